import IORedis, { Cluster, type ClusterOptions, type Redis, type RedisOptions } from "ioredis";
import { ConnectError, maskUrl } from "./errors";
import type { Logger } from "./log";

/** A connection to one Redis or to a Redis Cluster: the commands flowd sends work on both. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: REDIS_URL, or REDIS_CLUSTER_NODES with REDIS_URL giving only credentials and TLS. */
export interface RedisTarget {
  redisUrl: string;
  redisClusterNodes: readonly { host: string; port: number }[];
}

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
  logErrors(redis, name, log);
  return redis;
}

function logErrors(redis: RedisClient, name: string, log: Logger | undefined) {
  let lastLogged = 0;
  let unlogged = 0;
  const onError = (err: { code?: string; message?: string }) => {
    const now = Date.now();
    if (now - lastLogged < REDIS_ERROR_LOG_EVERY_MS) return void unlogged++;
    log?.warn("Redis connection error; reconnecting", { connection: name, err: err.code ?? err.message, since: unlogged });
    lastLogged = now;
    unlogged = 0;
  };
  redis.on("error", onError);
  // A cluster also reports each node's errors apart (a killed master refusing reconnects).
  if (redis instanceof Cluster) redis.on("node error", onError);
}

/** The credentials and TLS REDIS_URL gives, for the nodes of a cluster. */
function nodeOptions(url: string): RedisOptions {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
  };
}

/**
 * ioredis's Cluster with what a failover needs: MOVED/ASK are followed (up to maxRedirections), a
 * command to a master that died is retried after a slots refresh every `retryDelayOnFailover` until
 * its replica is promoted (about cluster-node-timeout plus an election), and a cluster that lost
 * every node keeps reconnecting. BullMQ's setting for blocking connections (`maxRetriesPerRequest:
 * null`) goes on the nodes, where BullMQ looks for it.
 */
function createCluster(target: RedisTarget, purpose: "blocking" | "request", name: string, extra: Partial<ClusterOptions> = {}): Cluster {
  const redisOptions: RedisOptions = {
    ...nodeOptions(target.redisUrl),
    connectionName: name,
    connectTimeout: 3_000,
    maxRetriesPerRequest: purpose === "blocking" ? null : 1,
  };
  return new Cluster([...target.redisClusterNodes], {
    redisOptions,
    clusterRetryStrategy: (attempt) => Math.min(100 * attempt, 2_000),
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    maxRedirections: 64,
    slotsRefreshTimeout: 2_000,
    slotsRefreshInterval: 5_000,
    // The API's connection must fail fast while the cluster is unreachable, as its single-Redis one does.
    enableOfflineQueue: purpose === "blocking",
    ...extra,
  });
}

/** createRedis for the configured target: a Cluster when REDIS_CLUSTER_NODES is set. */
export function connectRedis(target: RedisTarget, purpose: "blocking" | "request", name = "flowd", log?: Logger): RedisClient {
  if (target.redisClusterNodes.length === 0) return createRedis(target.redisUrl, purpose, name, log);
  const cluster = createCluster(target, purpose, name);
  logErrors(cluster, name, log);
  return cluster;
}

/**
 * For BullMQ objects over a connection from createRedis: they re-emit its errors, which it has
 * already logged, and an EventEmitter with no listener would throw them.
 */
export const loggedByConnection = (): void => {};

/** One quick connection attempt, so a start-up against an unreachable Redis says so in one line. */
export async function checkRedis(target: string | RedisTarget): Promise<{ maxmemoryPolicy: string | null; slotRanges: SlotRange[] | null }> {
  const t = typeof target === "string" ? { redisUrl: target, redisClusterNodes: [] } : target;
  const url = t.redisClusterNodes.length > 0 ? t.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(",") : t.redisUrl;
  const probe: RedisClient =
    t.redisClusterNodes.length > 0
      ? createCluster(t, "request", "flowd-check", { lazyConnect: true, clusterRetryStrategy: () => null, enableOfflineQueue: true })
      : new IORedis(t.redisUrl, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // The socket error (ECONNREFUSED, ENOTFOUND…) says more than the "Connection is closed" that follows it.
  let cause: { code?: string; message?: string } | undefined;
  probe.on("error", (err: { code?: string; message?: string }) => (cause ??= err));
  try {
    await probe.connect();
    await probe.ping();
    const slotRanges = t.redisClusterNodes.length > 0 ? await readSlotRanges(probe).catch(() => null) : null;
    return { maxmemoryPolicy: await readMaxmemoryPolicy(probe), slotRanges };
  } catch (err) {
    const e = cause ?? (err as { code?: string; message?: string });
    const hint = t.redisClusterNodes.length > 0 ? "start it or set REDIS_CLUSTER_NODES" : "start it or set REDIS_URL";
    throw new ConnectError(`cannot reach Redis at ${maskUrl(url)} (${e.code ?? e.message}); ${hint}`);
  } finally {
    probe.disconnect();
  }
}

/**
 * Whether Redis answers. For a cluster that means every master it knows answers and the cluster
 * says its slots are all served (`cluster_state:ok`): a PING alone reaches one random node, and
 * would call a cluster ready while a dead master's slots wait for its replica.
 */
export async function pingRedis(redis: RedisClient): Promise<void> {
  if (!(redis instanceof Cluster)) return void (await redis.ping());
  const masters = redis.nodes("master");
  if (masters.length === 0) throw new Error("no cluster master reachable");
  await Promise.all(masters.map((node) => node.ping()));
  const info = String(await masters[0]!.cluster("INFO"));
  const state = /cluster_state:(\w+)/.exec(info)?.[1];
  if (state !== "ok") throw new Error(`cluster_state is ${state ?? "unknown"}`);
  // A master that stopped answering is `disconnected`, then `fail?`, to the others before the
  // cluster agrees it failed and promotes its replica: ioredis has already dropped it from its
  // pool, so only the cluster's own view tells. Fields: id addr flags master ping pong epoch link slots…
  const failing = String(await masters[0]!.cluster("NODES"))
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f[2]?.includes("master") && (f[2].includes("fail") || f[7] === "disconnected") && f.length > 8); // still serving slots
  if (failing.length > 0) throw new Error(`cluster master ${failing.map((f) => f[1]?.split("@")[0]).join(", ")} is failing`);
}

/** A master's share of a cluster's slot map: `master` is its `host:port`. */
export interface SlotRange {
  from: number;
  to: number;
  master: string;
}

/** The cluster's slot map as a node sees it (CLUSTER SLOTS: `[from, to, [host, port, id], …replicas]`, on Redis 6 and 7 alike). */
export async function readSlotRanges(redis: RedisClient): Promise<SlotRange[]> {
  const reply = (await redis.call("CLUSTER", "SLOTS")) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
  return reply.map(([from, to, [host, port]]) => ({ from: Number(from), to: Number(to), master: `${host}:${port}` }));
}

/** BullMQ needs `noeviction`; managed Redis services sometimes forbid CONFIG, hence null. */
export async function readMaxmemoryPolicy(redis: RedisClient): Promise<string | null> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    return reply[1] ?? null;
  } catch {
    return null;
  }
}
