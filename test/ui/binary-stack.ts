import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { createTestDatabase } from "../helpers/db";
import { spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { launchBrowser, type Browser } from "./browser";

/**
 * What the browser tests drive: the compiled binary copied alone into an empty folder (its assets
 * come from inside it), one `--role=all` process on a database and prefix of the file's own, and
 * Chromium. `env` is the process's environment (`extraEnv` added, e.g. FLOWD_HANDLERS), for tests that start more processes on it.
 */
export async function startBinaryStack(tag: string, extraEnv: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), `flowd-${tag}-`));
  const bin = join(dir, "flowd");
  prepareBinary(bin);
  const db = await createTestDatabase();
  const prefix = uniquePrefix(tag);
  const env = { DATABASE_URL: db.url, REDIS_URL, FLOWD_PREFIX: prefix, LOG_LEVEL: "info", ...extraEnv };
  // PORT=0: the system picks a free port; one picked by guess can be another process's.
  const proc: FlowdProcess = spawnFlowd(["--role=all"], { ...env, PORT: "0" }, { bin, cwd: dir });
  const port = Number(new URL((JSON.parse(await proc.waitForLine(/"listening"/)) as { url: string }).url).port);
  await proc.waitForLine(/"flowd ready"/);
  const browser: Browser = await launchBrowser();
  return {
    dir,
    bin,
    db,
    prefix,
    env,
    port,
    base: `http://127.0.0.1:${port}`,
    proc,
    browser,
    async stop() {
      await browser.close();
      await proc.stop("SIGTERM");
      await deletePrefix(prefix);
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
export type BinaryStack = Awaited<ReturnType<typeof startBinaryStack>>;
