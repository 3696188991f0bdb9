import { expect, test } from "bun:test";
import { createServer } from "node:net";
import { createRedis, REDIS_ERROR_LOG_EVERY_MS } from "../src/redis";
import type { Logger } from "../src/log";
import { waitFor } from "./helpers/wait";

/** A loopback port nothing listens on: taken from the OS, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("a connection's errors are logged by createRedis, once per interval however often ioredis reconnects", async () => {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (msg, fields) => lines.push({ msg, fields }),
    error: (msg, fields) => lines.push({ msg, fields }),
    child: () => log,
  } as Logger;
  const redis = createRedis(`redis://127.0.0.1:${await closedPort()}`, "blocking", "test-refused", log);
  let errors = 0;
  redis.on("error", () => errors++);
  try {
    // ioredis retries every 100–2,000 ms: wait for several refusals.
    await waitFor(() => errors >= 4, 15_000, "four connection errors");
    expect(REDIS_ERROR_LOG_EVERY_MS).toBeGreaterThan(10_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toContain("Redis connection error");
    expect(lines[0]!.fields).toMatchObject({ connection: "test-refused", err: "ECONNREFUSED" });
  } finally {
    redis.disconnect();
  }
});
