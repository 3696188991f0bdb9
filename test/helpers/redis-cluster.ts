import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import IORedis from "ioredis";
import { waitFor } from "./wait";
import { testPort } from "./ports";

/** Whether a loopback port is free now (a cluster node also needs port + 10000 for its bus). */
async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    // Each node's bus port is its port + 10,000: both stay below the ephemeral range (see ports.ts).
    const port = testPort(2_700);
    if (ports.includes(port) || ports.includes(port + 10_000) || ports.includes(port - 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

const connect = (port: number) => {
  const r = new IORedis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  r.on("error", () => {});
  return r;
};

/** One command to one node, on a connection of its own; null when the node does not answer. */
async function ask(port: number, ...args: string[]): Promise<unknown> {
  const r = connect(port);
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } catch {
    return null;
  } finally {
    r.disconnect();
  }
}

export interface ClusterNodeInfo {
  port: number;
  role: "master" | "replica";
  /** For a master: whether it serves slots. */
  slots: boolean;
}

/**
 * A real Redis Cluster on loopback: six `redis-server --cluster-enabled yes` in a temp folder,
 * three masters with a replica each, formed by `redis-cli --cluster create`. A short
 * cluster-node-timeout makes a replica take over from a killed master in a few seconds.
 */
export async function startRedisCluster(opts: { nodeTimeoutMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "flowd-cluster-"));
  const ports = await freePorts(6);
  const procs = new Map<number, ReturnType<typeof Bun.spawn>>();
  for (const port of ports) {
    const proc = Bun.spawn(
      [
        "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
        "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", String(opts.nodeTimeoutMs ?? 2_000),
        "--cluster-replica-validity-factor", "0", "--save", "", "--appendonly", "no", "--dir", dir,
        "--maxmemory-policy", "noeviction", "--repl-diskless-sync-delay", "0",
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    procs.set(port, proc);
  }
  for (const port of ports) await waitFor(async () => (await ask(port, "PING")) === "PONG", 10_000, `redis-server on ${port}`);
  const create = Bun.spawn(["redis-cli", "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if ((await create.exited) !== 0) throw new Error(`redis-cli --cluster create failed: ${await new Response(create.stdout).text()}`);
  const cluster = {
    ports,
    /** REDIS_CLUSTER_NODES for flowd: every node, as a client would list its seeds. */
    nodesEnv: ports.map((p) => `127.0.0.1:${p}`).join(","),
    /** The nodes alive now, as the cluster sees them (asked of a live node). */
    async nodes(): Promise<ClusterNodeInfo[]> {
      for (const port of ports) {
        if (!procs.has(port)) continue;
        const text = (await ask(port, "CLUSTER", "NODES")) as string | null;
        if (!text) continue;
        return text
          .trim()
          .split("\n")
          .map((line) => line.split(" "))
          .filter((f) => !f[2]!.includes("fail") && procs.has(Number(f[1]!.split(":")[1]!.split("@")[0])))
          .map((f) => ({
            port: Number(f[1]!.split(":")[1]!.split("@")[0]),
            role: f[2]!.includes("master") ? ("master" as const) : ("replica" as const),
            slots: f.length > 8,
          }));
      }
      return [];
    },
    async masters(): Promise<number[]> {
      return (await cluster.nodes()).filter((n) => n.role === "master" && n.slots).map((n) => n.port);
    },
    /** Waits until every slot is served and three masters answer (after create, or after a failover). */
    async waitHealthy(ms = 30_000) {
      await waitFor(
        async () => {
          const live = [...procs.keys()];
          const states = await Promise.all(live.map(async (p) => /cluster_state:ok/.test(String(await ask(p, "CLUSTER", "INFO")))));
          return states.every(Boolean) && (await cluster.masters()).length === 3;
        },
        ms,
        "a healthy cluster with three masters",
        100,
      );
    },
    /**
     * Waits until every replica has finished its first sync: a replica promoted before that would
     * come up without its master's data, which no client could ride through.
     */
    async waitReplicasInSync(ms = 30_000) {
      await waitFor(
        async () => {
          const infos = await Promise.all([...procs.keys()].map(async (p) => String(await ask(p, "INFO", "replication"))));
          const replicas = infos.filter((i) => /role:slave/.test(i));
          return replicas.length === 3 && replicas.every((i) => /master_link_status:up/.test(i) && !/master_sync_in_progress:1/.test(i));
        },
        ms,
        "three replicas in sync with their masters",
        100,
      );
    },
    /** The port of the master serving `key`'s slot. */
    async ownerOf(key: string): Promise<number> {
      const live = [...procs.keys()][0]!;
      const slot = Number(await ask(live, "CLUSTER", "KEYSLOT", key));
      const ranges = (await ask(live, "CLUSTER", "SLOTS")) as [number, number, [string, number]][];
      return ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
    },
    /** Keys a node holds (DBSIZE). */
    keysOn: async (port: number) => Number(await ask(port, "DBSIZE")),
    /** Keys a node holds that match a SCAN pattern (e.g. one prefix's shards: `{p@*`). */
    async keysMatching(port: number, pattern: string): Promise<number> {
      const r = connect(port);
      try {
        await r.connect();
        let [cursor, n] = ["0", 0];
        do {
          const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
          [cursor, n] = [next, n + keys.length];
        } while (cursor !== "0");
        return n;
      } finally {
        r.disconnect();
      }
    },
    /** The slot the cluster itself gives a key (CLUSTER KEYSLOT). */
    keySlot: async (key: string) => Number(await ask([...procs.keys()][0]!, "CLUSTER", "KEYSLOT", key)),
    /** Kills a node with SIGKILL: no goodbye to the cluster, as a crashed machine. */
    async kill(port: number) {
      const proc = procs.get(port);
      if (!proc) return;
      proc.kill("SIGKILL");
      await proc.exited;
      procs.delete(port);
    },
    async stop() {
      for (const port of [...procs.keys()]) await cluster.kill(port);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.waitHealthy();
    await cluster.waitReplicasInSync();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
export type RedisCluster = Awaited<ReturnType<typeof startRedisCluster>>;
