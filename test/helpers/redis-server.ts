import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import IORedis from "ioredis";
import { waitFor } from "./wait";
import { testPort } from "./ports";

/** A redis-server of the test's own, on its own port, that the test may stop and start again. */
export async function startRedisServer(port = testPort()) {
  const dir = mkdtempSync(join(tmpdir(), "flowd-redis-"));
  let proc: ReturnType<typeof Bun.spawn> | null = null;
  const url = `redis://127.0.0.1:${port}`;
  const ping = async () => {
    const r = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  };
  const server = {
    url,
    port,
    async start() {
      proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
        stdout: "ignore",
        stderr: "ignore",
      });
      await waitFor(ping, 10_000, `redis-server on ${port}`);
    },
    async stop() {
      if (!proc) return;
      proc.kill("SIGKILL");
      await proc.exited;
      proc = null;
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
