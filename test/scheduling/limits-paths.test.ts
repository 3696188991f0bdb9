import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DelayedError, Worker } from "bullmq";
import IORedis from "ioredis";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keySettingsOf } from "../../src/scheduling/limits";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

/**
 * Per-key limits on the paths beside a plain create: jobs a running job adds to its flow (a module
 * handler's `ctx.spawn`, the REST spawn route your own worker calls), debounced jobs, and the rule
 * by which jobs naming one key with different settings set it. An API and two worker processes on
 * a database and prefix of their own.
 */
let cluster: Cluster;
let api: ApiProcess;
const dir = mkdtempSync(join(tmpdir(), "flowd-limit-paths-"));

// `fan` adds n `sleep` jobs under one concurrency key and joins on them; it runs again after the
// join (re-entry), when its spawn answers the jobs already added and the join their results.
const MODULE = `
export default {
  fan: {
    async run(ctx) {
      const keys = Array.from({ length: ctx.data.n }, (_, i) => "s" + i);
      await ctx.spawn(keys.map((key) => ({ key, name: "sleep", data: { ms: ctx.data.ms }, opts: { concurrency: { key: ctx.data.limitKey, limit: ctx.data.limit } } })));
      const results = await ctx.waitFor(keys);
      return { count: Object.keys(results).length };
    },
  },
};
`;

beforeAll(async () => {
  writeFileSync(join(dir, "fan.ts"), MODULE);
  cluster = await startCluster({
    apis: 1,
    workers: 0,
    tag: "limit-paths",
    env: { FLOWD_HANDLERS: join(dir, "fan.ts"), WORKER_CONCURRENCY: "8", FLOWD_EXTERNAL_QUEUES: "ext" },
  });
  api = cluster.apis[0]!;
  await cluster.startWorker();
  await cluster.startWorker();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const sql = () => cluster.database.sql;

/** The most of these runs that overlapped, from their started_at / finished_at. */
function peak(rows: { started: number; finished: number }[]) {
  const list = rows.flatMap((r) => [[r.started, 1], [r.finished, -1]] as [number, number][]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of list) most = Math.max(most, (now += d));
  return most;
}

async function createFlow(body: unknown) {
  // The API learns the worker's module handlers from the registry's notification, a moment after the worker is ready.
  const res = await waitFor(async () => {
    const r = await api.http("POST", "/v1/flows", body);
    return r.status === 400 && r.body.error.code === "unknown_handler" ? null : r;
  }, 20_000, "the API to know the module's handlers");
  expect(res.status).toBe(201);
  return res.body as { id: string };
}

describe("jobs added while a flow runs", () => {
  test("a module handler's ctx.spawn: 12 added jobs on a key with limit 2 never run more than 2 at once, held in Postgres, and all complete", async () => {
    const flow = await createFlow({ name: "spawned under a limit", jobs: [{ key: "fan", name: "fan", data: { n: 12, ms: 150, limitKey: "spawned", limit: 2 } }] });
    // While they run, the added jobs beyond the limit wait in Postgres for their turn.
    await waitFor(async () => {
      const [row] = await sql()<{ n: number }[]>`
        select count(*)::int as n from flow_jobs where flow_id = ${flow.id} and waiting_for = 'concurrency' and status = 'pending'`;
      return row!.n > 0;
    }, 30_000, "added jobs held for their key");
    const done = await api.http("GET", `/v1/flows/${flow.id}?wait=60`);
    expect(done.body.status).toBe("completed");
    expect(done.body.jobs.find((j: { key: string }) => j.key === "fan").result).toEqual({ count: 12 });
    const rows = await sql()<{ started: number; finished: number; status: string }[]>`
      select status, extract(epoch from started_at)::float8 * 1000 as started, extract(epoch from finished_at)::float8 * 1000 as finished
      from flow_jobs where flow_id = ${flow.id} and key like 's%'`;
    expect(rows.length).toBe(12);
    expect(rows.every((r) => r.status === "completed")).toBe(true);
    expect(peak(rows)).toBe(2);
    const [key] = await sql()<{ concurrency: number }[]>`select concurrency from limit_keys where key = 'spawned'`;
    expect(key!.concurrency).toBe(2);
  }, 120_000);

  test("your own BullMQ worker's spawn through POST /v1/jobs/:id/spawn: the added jobs keep to their key's limit", async () => {
    let running = 0;
    let peakSeen = 0;
    const connection = new IORedis(cluster.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const worker = new Worker(
      "ext",
      async (job, token) => {
        if (job.name === "part") {
          peakSeen = Math.max(peakSeen, ++running);
          await Bun.sleep(100);
          running--;
          return { i: job.data.i };
        }
        const keys = Array.from({ length: 8 }, (_, i) => `p${i}`);
        const res = await fetch(`${api.url}/v1/jobs/${job.id}/spawn`, {
          method: "POST",
          headers: { authorization: `Bearer ${cluster.token}`, "content-type": "application/json" },
          body: JSON.stringify({
            lockToken: token,
            jobs: keys.map((key, i) => ({ key, name: "part", queue: "ext", data: { i }, opts: { concurrency: { key: "rest-spawn", limit: 2 } } })),
            waitFor: keys,
          }),
        });
        const answer = (await res.json()) as { parked: boolean; results?: Record<string, unknown> };
        if (res.status !== 200) throw new Error(JSON.stringify(answer));
        if (answer.parked) throw new DelayedError();
        return { count: Object.keys(answer.results ?? {}).length };
      },
      { connection, prefix: cluster.prefix, concurrency: 10 },
    );
    try {
      const flow = await createFlow({ name: "rest spawn", jobs: [{ key: "split", name: "split", queue: "ext" }] });
      const done = await api.http("GET", `/v1/flows/${flow.id}?wait=60`);
      expect(done.body.status).toBe("completed");
      expect(done.body.jobs.find((j: { key: string }) => j.key === "split").result).toEqual({ count: 8 });
      expect(done.body.jobs.length).toBe(9);
      expect(peakSeen).toBe(2);
    } finally {
      await worker.close();
      connection.disconnect();
    }
  }, 120_000);
});

describe("one rule for a key's settings", () => {
  // Two jobs name one key: the first with a concurrency limit only, the second with another
  // concurrency limit and a rate limit. Whatever the create, the key gets the first job's
  // concurrency and the only rate limit given — what creating the two one by one would store.
  const first = { concurrency: { key: "K", limit: 3 } };
  const second = { concurrency: { key: "K", limit: 9 }, rateLimit: { key: "K", max: 50, perMs: 1000 } };
  const rename = (opts: typeof first | typeof second, key: string) => JSON.parse(JSON.stringify(opts).replaceAll('"K"', JSON.stringify(key)));
  const stored = async (key: string) => {
    const [row] = await sql()<{ concurrency: number | null; rate_max: number | null; rate_per_ms: string | null }[]>`
      select concurrency, rate_max, rate_per_ms from limit_keys where key = ${key}`;
    return row && { concurrency: row.concurrency, rateMax: row.rate_max, ratePerMs: row.rate_per_ms === null ? null : Number(row.rate_per_ms) };
  };
  const expected = { concurrency: 3, rateMax: 50, ratePerMs: 1000 };

  test("keySettingsOf: each setting from the first job giving it, in order", () => {
    expect(keySettingsOf([first, second])).toEqual([{ key: "K", ...expected }]);
    expect(keySettingsOf([second, first])).toEqual([{ key: "K", concurrency: 9, rateMax: 50, ratePerMs: 1000 }]);
    expect(keySettingsOf([{}, null, { rateLimit: { key: "R", max: 1, perMs: 10 } }, { rateLimit: { key: "R", max: 2, perMs: 20 } }])).toEqual([
      { key: "R", concurrency: null, rateMax: 1, ratePerMs: 10 },
    ]);
  });

  test("a bulk create, a graph flow and two creates one by one store the same settings", async () => {
    const bulk = await api.http("POST", "/v1/jobs/bulk", { jobs: [first, second].map((o) => ({ name: "echo", data: {}, opts: rename(o, "rule-bulk") })) });
    expect(bulk.status).toBe(201);
    const graph = await api.http("POST", "/v1/flows", {
      name: "rule",
      jobs: [first, second].map((o, i) => ({ key: `j${i}`, name: "echo", data: {}, opts: rename(o, "rule-graph") })),
    });
    expect(graph.status).toBe(201);
    for (const o of [first, second]) expect((await api.http("POST", "/v1/jobs", { name: "echo", data: {}, opts: rename(o, "rule-single") })).status).toBe(201);
    expect(await stored("rule-bulk")).toEqual(expected);
    expect(await stored("rule-graph")).toEqual(expected);
    expect(await stored("rule-single")).toEqual(expected);
    // Stored once: later jobs with other values change nothing; PUT is the way to change them.
    expect((await api.http("POST", "/v1/jobs", { name: "echo", data: {}, opts: rename(second, "rule-bulk") })).status).toBe(201);
    expect(await stored("rule-bulk")).toEqual(expected);
  }, 60_000);
});

describe("debounce under a concurrency limit", () => {
  test("a debounced job whose key is full waits for its turn, then runs once with the newest data", async () => {
    const opts = { concurrency: { key: "deb", limit: 1 } };
    const busy = await api.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 3000 }, opts });
    expect(busy.status).toBe(201);
    await waitFor(async () => {
      const [row] = await sql()<{ status: string }[]>`select status from jobs where id = ${busy.body.id}`;
      return row!.status === "active";
    }, 30_000, "the key's one slot taken");
    const answers = [];
    for (let i = 0; i < 5; i++)
      answers.push(await api.http("POST", "/v1/jobs", { name: "echo", data: { n: i }, opts: { ...opts, debounce: { key: "deb-window", ms: 200 } } }));
    const id = answers[0]!.body.id as string;
    expect(answers.every((a) => a.body.id === id)).toBe(true);
    // The window ends while the key is full: the job takes its limit hold instead of entering Redis.
    const held = await waitFor(async () => {
      const res = await api.http("GET", `/v1/jobs/${id}`);
      return res.body.waitingFor?.reason === "concurrency" ? res.body : null;
    }, 30_000, "the debounced job held for its key");
    expect(held.status).toBe("pending");
    expect(held.waitingFor).toEqual({ reason: "concurrency", key: "deb" });
    const [stillBusy] = await sql()<{ status: string }[]>`select status from jobs where id = ${busy.body.id}`;
    expect(stillBusy!.status).toBe("active");
    const done = await api.http("GET", `/v1/jobs/${id}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result.data).toEqual({ n: 4 });
    expect(done.body.debounce.collapsed).toBe(4);
    expect(done.body.attemptsMade).toBe(1);
    const [order] = await sql()<{ after: boolean }[]>`
      select (select started_at from jobs where id = ${id}) >= (select finished_at from jobs where id = ${busy.body.id}) as after`;
    expect(order!.after).toBe(true);
    // Once: the five creates made one row.
    const [count] = await sql()<{ n: number }[]>`select count(*)::int as n from jobs where debounce_key = 'deb-window'`;
    expect(count!.n).toBe(1);
  }, 60_000);
});

describe("tree flows", () => {
  const treeRuns = (flowId: string, key: string) =>
    sql()<{ id: string; parent_id: string | null; started: number; finished: number; status: string }[]>`
      select id, parent_id, status, extract(epoch from started_at)::float8 * 1000 as started, extract(epoch from finished_at)::float8 * 1000 as finished
      from flow_jobs where flow_id = ${flowId} and ${key} = any(concurrency_keys)`;

  test("a tree with 20 children on one key with limit 2: never more than 2 run at once, all complete, and the parent completes with their results", async () => {
    const opts = { concurrency: { key: "tree", limit: 2 } };
    const res = await api.http("POST", "/v1/flows", {
      name: "limited tree",
      root: { name: "echo", data: { root: true }, children: Array.from({ length: 20 }, (_, i) => ({ name: "sleep", data: { ms: 150, i }, opts })) },
    });
    expect(res.status).toBe(201);
    const held = (res.body.root.children as { waitingFor?: { reason: string; key?: string } }[]).filter((j) => j.waitingFor?.reason === "concurrency");
    // The create's own pass lets 2 go (a worker's sweeper may have first; the answer then shows all 20 held).
    expect(held.length === 18 || held.length === 20).toBe(true);
    expect(held[0]!.waitingFor).toEqual({ reason: "concurrency", key: "tree" });
    const done = await api.http("GET", `/v1/flows/${res.body.id}?wait=60`);
    expect(done.body.status).toBe("completed");
    const rows = await treeRuns(res.body.id, "tree");
    expect(rows.length).toBe(20);
    expect(rows.every((r) => r.status === "completed")).toBe(true);
    expect(peak(rows)).toBe(2);
    expect(Object.keys(done.body.root.result.children).length).toBe(20);
  }, 120_000);

  test("a limited parent waits for its children before it takes a slot of the key they share, so a limit of 1 cannot deadlock", async () => {
    const opts = { concurrency: { key: "nest", limit: 1 } };
    const res = await api.http("POST", "/v1/flows", {
      name: "nested limits",
      root: { name: "echo", data: {}, opts, children: Array.from({ length: 3 }, (_, i) => ({ name: "sleep", data: { ms: 300, i }, opts })) },
    });
    expect(res.status).toBe(201);
    // While its children run, the parent waits for them, holding no slot and not yet in its key's line.
    const during = await waitFor(async () => {
      const view = await api.http("GET", `/v1/flows/${res.body.id}`);
      return (view.body.root.children as { status: string }[]).some((j) => j.status === "active") ? view.body : null;
    }, 30_000, "a child running");
    expect(during.root.status).toBe("waiting-children");
    expect(during.root.waitingFor).toBeUndefined();
    const done = await api.http("GET", `/v1/flows/${res.body.id}?wait=60`);
    expect(done.body.status).toBe("completed");
    const rows = await treeRuns(res.body.id, "nest");
    expect(rows.length).toBe(4);
    expect(peak(rows)).toBe(1);
    const root = rows.find((r) => r.parent_id === null)!;
    expect(root.started).toBeGreaterThanOrEqual(Math.max(...rows.filter((r) => r.parent_id !== null).map((r) => r.finished)));
  }, 120_000);

  test("a retried tree's limited jobs wait their turn again and complete", async () => {
    const opts = { concurrency: { key: "tree-retry", limit: 1 } };
    const res = await api.http("POST", "/v1/flows", {
      name: "retried tree",
      root: { name: "echo", data: {}, opts, children: [{ name: "fail", data: { times: 1 }, opts }, { name: "sleep", data: { ms: 100 }, opts }] },
    });
    expect(res.status).toBe(201);
    const failed = await api.http("GET", `/v1/flows/${res.body.id}?wait=30`);
    expect(failed.body.status).toBe("failed");
    // Its unfinished sibling ends too; only then has the key no running job left to count.
    await waitFor(async () => {
      const [row] = await sql()<{ n: number }[]>`select count(*)::int as n from flow_jobs where flow_id = ${res.body.id} and status not in ('completed', 'failed', 'cancelled')`;
      return row!.n === 0;
    }, 30_000, "the failed tree's jobs ended");
    expect((await api.http("POST", `/v1/flows/${res.body.id}/retry`)).status).toBe(200);
    const done = await api.http("GET", `/v1/flows/${res.body.id}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(peak(await treeRuns(res.body.id, "tree-retry"))).toBe(1);
  }, 120_000);

  test("a tree's children under a rate limit of 5 per second start spread out, one every 200 ms, and all complete", async () => {
    const opts = { rateLimit: { key: "tree-rate", max: 5, perMs: 1000 } };
    const res = await api.http("POST", "/v1/flows", {
      name: "rate-limited tree",
      root: { name: "echo", data: {}, children: Array.from({ length: 10 }, (_, i) => ({ name: "echo", data: { i }, opts })) },
    });
    expect(res.status).toBe(201);
    const done = await api.http("GET", `/v1/flows/${res.body.id}?wait=60`);
    expect(done.body.status).toBe("completed");
    const [span] = await sql()<{ ms: number; n: number }[]>`
      select extract(epoch from max(started_at) - min(started_at))::float8 * 1000 as ms, count(*)::int as n
      from flow_jobs where flow_id = ${res.body.id} and rate_key = 'tree-rate' and status = 'completed'`;
    expect(span!.n).toBe(10);
    // Nine intervals of 200 ms, less the fifth of a period a pass may catch up and some jitter (unlimited: a few ms).
    expect(span!.ms).toBeGreaterThanOrEqual(1_300);
  }, 120_000);

  test("a tree's job with a bad limit is refused with its path, and nothing is written", async () => {
    const count = async () => (await sql()<{ n: number }[]>`select (select count(*) from flow_jobs) + (select count(*) from limit_keys) as n`)[0]!.n;
    const before = await count();
    const res = await api.http("POST", "/v1/flows", {
      name: "bad",
      root: { name: "echo", children: [{ name: "echo", opts: { concurrency: [{ key: "a", limit: 1 }, { key: "a", limit: 2 }] } }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_input");
    expect(res.body.error.details[0].path).toBe("/root/children/0/opts/concurrency/1/key");
    const zero = await api.http("POST", "/v1/flows", { name: "bad", root: { name: "echo", opts: { concurrency: { key: "k", limit: 0 } } } });
    expect(zero.status).toBe(400);
    expect(zero.body.error.details[0].path).toBe("/root/opts/concurrency/limit");
    const perMs = await api.http("POST", "/v1/flows", { name: "bad", root: { name: "echo", children: [{ name: "echo", opts: { rateLimit: { key: "k", max: 5 } } }] } });
    expect(perMs.status).toBe(400);
    expect(perMs.body.error.details[0].path).toBe("/root/children/0/opts/rateLimit/perMs");
    expect(await count()).toEqual(before);
  });
});

describe("FLOWD_SHARDS=3", () => {
  test("trees on different shards share one key's limit: never more than 2 of its jobs run at once, and all complete", async () => {
    const sharded = await startCluster({ apis: 1, workers: 1, tag: "limit-shards", env: { FLOWD_SHARDS: "3", WORKER_CONCURRENCY: "8" } });
    try {
      const opts = { concurrency: { key: "across", limit: 2 } };
      const flows: string[] = [];
      const shards = new Set<number>();
      // Trees until two shards hold some (each flow's shard is picked from its id).
      while (flows.length < 4 || (shards.size < 2 && flows.length < 30)) {
        const res = await sharded.apis[0]!.http("POST", "/v1/flows", {
          name: "sharded tree",
          root: { name: "echo", data: {}, children: Array.from({ length: 4 }, (_, i) => ({ name: "sleep", data: { ms: 100, i }, opts })) },
        });
        expect(res.status).toBe(201);
        flows.push(res.body.id);
        const [row] = await sharded.database.sql<{ shard: number }[]>`select shard from flow_jobs where flow_id = ${res.body.id} limit 1`;
        shards.add(row!.shard);
      }
      expect(shards.size).toBeGreaterThan(1);
      for (const id of flows) expect((await sharded.apis[0]!.http("GET", `/v1/flows/${id}?wait=60`)).body.status).toBe("completed");
      const rows = await sharded.database.sql<{ started: number; finished: number; status: string }[]>`
        select status, extract(epoch from started_at)::float8 * 1000 as started, extract(epoch from finished_at)::float8 * 1000 as finished
        from flow_jobs where flow_id = any(${flows}) and concurrency_keys is not null`;
      expect(rows.length).toBe(flows.length * 4);
      expect(rows.every((r) => r.status === "completed")).toBe(true);
      expect(peak(rows)).toBe(2);
    } finally {
      await sharded.stop();
    }
  }, 180_000);
});
