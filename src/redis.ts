import IORedis, { type Redis, type RedisOptions } from "ioredis";
import { ConnectError, maskUrl } from "./errors";
import type { Logger } from "./log";

/** A connection's errors are logged at most this often: ioredis reports every failed reconnect (several a second). */
export const REDIS_ERROR_LOG_EVERY_MS = 30_000;

/**
 * `blocking`: for BullMQ workers and stream readers, which must wait out outages (BullMQ requires
 * `maxRetriesPerRequest: null`). `request`: for the API, which must fail fast while Redis is down
 * so that a request answers 503 or leaves its flow `pending` instead of hanging.
 *
 * The connection's errors are handled here, once: ioredis keeps reconnecting by itself, so an error
 * is news, not a failure of the caller's; without a listener it would be printed raw as an
 * unhandled 'error' event. What an outage means is said elsewhere (readiness, 503s, the recorder).
 */
export function createRedis(url: string, purpose: "blocking" | "request", name = "flowd", log?: Logger): Redis {
  const common: RedisOptions = {
    connectionName: name,
    connectTimeout: 3_000,
    retryStrategy: (attempt) => Math.min(100 * attempt, 2_000),
    lazyConnect: false,
  };
  const redis =
    purpose === "blocking"
      ? new IORedis(url, { ...common, maxRetriesPerRequest: null })
      : new IORedis(url, { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  let lastLogged = 0;
  let unlogged = 0;
  redis.on("error", (err: { code?: string; message?: string }) => {
    const now = Date.now();
    if (now - lastLogged < REDIS_ERROR_LOG_EVERY_MS) return void unlogged++;
    log?.warn("Redis connection error; reconnecting", { connection: name, err: err.code ?? err.message, since: unlogged });
    lastLogged = now;
    unlogged = 0;
  });
  return redis;
}

/**
 * For BullMQ objects over a connection from createRedis: they re-emit its errors, which it has
 * already logged, and an EventEmitter with no listener would throw them.
 */
export const loggedByConnection = (): void => {};

/** One quick connection attempt, so a start-up against an unreachable Redis says so in one line. */
export async function checkRedis(url: string): Promise<{ maxmemoryPolicy: string | null }> {
  const probe = new IORedis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // The socket error (ECONNREFUSED, ENOTFOUND…) says more than the "Connection is closed" that follows it.
  let cause: { code?: string; message?: string } | undefined;
  probe.on("error", (err: { code?: string; message?: string }) => (cause ??= err));
  try {
    await probe.connect();
    await probe.ping();
    return { maxmemoryPolicy: await readMaxmemoryPolicy(probe) };
  } catch (err) {
    const e = cause ?? (err as { code?: string; message?: string });
    throw new ConnectError(`cannot reach Redis at ${maskUrl(url)} (${e.code ?? e.message}); start it or set REDIS_URL`);
  } finally {
    probe.disconnect();
  }
}

/** BullMQ needs `noeviction`; managed Redis services sometimes forbid CONFIG, hence null. */
export async function readMaxmemoryPolicy(redis: Redis): Promise<string | null> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    return reply[1] ?? null;
  } catch {
    return null;
  }
}
