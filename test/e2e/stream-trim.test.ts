import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRedis } from "../../src/redis";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startCountingReceiver } from "../helpers/receiver";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

// BullMQ's event streams are capped; a recorder that falls behind the cap never sees what was
// trimmed. Here the test trims every stream to nothing, several times, while 20 flows of 1,000
// jobs run: every row must still end in the state Redis holds, and no job may run twice.
let cluster: Cluster;
const receiver = startCountingReceiver();
const redis = createRedis(REDIS_URL, "request", "test-trim");
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "trim", env: { FLOWD_RECONCILE_INTERVAL_MS: "2000" } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  receiver.stop();
  redis.disconnect();
});

const FLOWS = 20;
const LEAVES = 9 * 110; // 1 root + 9 branches + 990 leaves = 1,000 jobs

/** A 1,000-job flow: a root, 9 branches, 110 leaves each; one leaf per branch is an http call the test counts. */
function bigFlow(n: number) {
  const branch = (b: number) => ({
    name: "echo",
    data: { n, b },
    children: Array.from({ length: LEAVES / 9 }, (_, l) =>
      l === 0 ? { name: "http", data: { url: receiver.url(`/f${n}/b${b}`), method: "POST" } } : { name: "echo", data: { n, b, l } },
    ),
  });
  return { name: `trimmed ${n}`, root: { name: "echo", data: { n }, children: Array.from({ length: 9 }, (_, b) => branch(b)) } };
}

async function trimAllStreams(): Promise<number> {
  const keys = await redis.keys(`${cluster.prefix}:*:events`);
  for (const key of keys) await redis.xtrim(key, "MAXLEN", 0);
  return keys.length;
}

describe("event streams trimmed while the recorder reads them", () => {
  test("every row reaches Redis's state, and every job ran once", async () => {
    const api = cluster.apis[0]!;
    const ids: string[] = [];
    let trims = 0;
    let done = false;
    // Trims race the run: from the first create until every flow finished (at least 5 times).
    const trimmer = (async () => {
      while (!done || trims < 5) {
        if ((await trimAllStreams()) > 0) trims++;
        await Bun.sleep(300);
      }
    })();
    for (let i = 0; i < FLOWS; i += 4) {
      const replies = await Promise.all([0, 1, 2, 3].map((k) => api.http("POST", "/v1/flows", bigFlow(i + k))));
      for (const r of replies) {
        expect(r.status).toBe(201);
        ids.push(r.body.id);
      }
    }
    await waitFor(async () => {
      const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flows where status = 'running'`;
      return row!.n === 0;
    }, 240_000, "every flow finished", 500).catch((err) => {
      console.log(cluster.workers[0]!.lines.filter((l) => /recorder|converge|trimmed|warn|error/.test(l)).slice(-30).join("\n"));
      throw err;
    });
    done = true;
    await trimmer;
    // The last trims may have taken completions the recorder had not read: it converges them.
    await waitFor(async () => {
      const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where status <> 'completed'`;
      return row!.n === 0;
    }, 120_000, "every job row completed", 500).catch((err) => {
      console.log(cluster.workers[0]!.lines.filter((l) => /recorder|converge|trimmed/.test(l)).slice(-30).join("\n"));
      throw err;
    });
    console.log(`trimmed every stream ${trims} times during the run`);
    expect(trims).toBeGreaterThanOrEqual(5);

    const flows = await cluster.database.sql<{ status: string }[]>`select status from flows`;
    expect(flows).toHaveLength(FLOWS);
    expect(flows.every((f) => f.status === "completed")).toBe(true);
    const rows = await cluster.database.sql<{ job_id: string; queue_name: string; status: string; created_job_id: string }[]>`
      select job_id, queue_name, status, id from flow_jobs`;
    expect(rows).toHaveLength(FLOWS * 1000);
    expect(rows.filter((r) => r.status !== "completed")).toEqual([]);

    // Redis's own record: each job completed, started exactly once (BullMQ's `ats`).
    const pipeline = redis.pipeline();
    for (const r of rows) {
      pipeline.zscore(`${cluster.prefix}:${r.queue_name}:completed`, r.job_id);
      pipeline.hget(`${cluster.prefix}:${r.queue_name}:${r.job_id}`, "ats");
    }
    const replies = (await pipeline.exec())!;
    const notCompleted = rows.filter((_, i) => replies[2 * i]![1] === null);
    const startedTwice = rows.filter((_, i) => replies[2 * i + 1]![1] !== "1");
    expect(notCompleted).toEqual([]);
    expect(startedTwice).toEqual([]);
    // No flow was rebuilt under new ids: every job kept the id it was created with.
    const [renamed] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where job_id <> id`;
    expect(renamed!.n).toBe(0);
    // The counted calls: one request per http job, none repeated.
    expect(receiver.hits.size).toBe(FLOWS * 9);
    expect([...receiver.hits.values()].every((n) => n === 1)).toBe(true);
    // The recorder noticed: a gap was converged, said in its log (API processes stand by for the
    // recorder lease too, so whichever process held it).
    const lines = [...cluster.workers, ...cluster.apis.map((a) => a.proc)].flatMap((p) => p.lines);
    const converged = lines.filter((l) => l.includes("converged job states from Redis"));
    console.log(`the recorder converged ${converged.length} gaps`);
    expect(converged.length).toBeGreaterThan(0);
  }, 300_000);
});
