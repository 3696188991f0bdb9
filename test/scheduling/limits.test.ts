import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

// Per-key limits through real processes: one API, two workers on a database and prefix of their own.
let cluster: Cluster;
let api: ApiProcess;

beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 2, tag: "limits", env: { WORKER_CONCURRENCY: "16" } });
  api = cluster.apis[0]!;
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const bulk = async (jobs: unknown[]) => {
  const ids: string[] = [];
  for (let i = 0; i < jobs.length; i += 500) {
    const res = await api.http("POST", "/v1/jobs/bulk", { jobs: jobs.slice(i, i + 500) });
    if (res.status !== 201)
      throw new Error(`bulk: ${res.status} ${JSON.stringify(res.body)}\n${api.proc.lines.filter((l) => l.includes('"error"') || l.includes("warn")).slice(-3).join("\n")}`);
    ids.push(...(res.body.items as { id: string }[]).map((j) => j.id));
  }
  return ids;
};

const sql = () => cluster.database.sql;

const unfinished = async (ids: string[]) => {
  const [row] = await sql()<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status not in ('completed', 'failed', 'cancelled')`;
  return row!.n;
};

/** The most jobs of each key that ran at once, from the rows' started_at / finished_at. */
async function peakPerKey(ids: string[]): Promise<Map<string, number>> {
  const rows = await sql()<{ key: string; started: number; finished: number }[]>`
    select concurrency_keys[1] as key, extract(epoch from started_at)::float8 * 1000 as started,
           extract(epoch from finished_at)::float8 * 1000 as finished
    from jobs where id = any(${ids})`;
  const events = new Map<string, [number, number][]>();
  for (const r of rows) {
    const list = events.get(r.key) ?? [];
    // An end sorts before a start at the same instant: the slot was free by then.
    list.push([r.started, 1], [r.finished, -1]);
    events.set(r.key, list);
  }
  const peaks = new Map<string, number>();
  for (const [key, list] of events) {
    list.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let peak = 0;
    for (const [, d] of list) peak = Math.max(peak, (now += d));
    peaks.set(key, peak);
  }
  return peaks;
}

describe("concurrency per key", () => {
  test("200 jobs over 10 keys with limit 2: never more than 2 of a key run at once, and all complete", async () => {
    const jobs = Array.from({ length: 200 }, (_, i) => ({ name: "sleep", data: { ms: 20 }, opts: { concurrency: { key: `k${i % 10}`, limit: 2 } } }));
    const ids = await bulk(jobs);
    await waitFor(async () => (await unfinished(ids)) === 0, 60_000, "every limited job finished");
    const [done] = await sql()<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`;
    expect(done!.n).toBe(200);
    const peaks = await peakPerKey(ids);
    expect(peaks.size).toBe(10);
    for (const [key, peak] of peaks) {
      expect({ key, peak: peak <= 2 }).toEqual({ key, peak: true });
    }
    // At least one key really used both its slots at once: the limit, not a queue of one, held them.
    expect(Math.max(...peaks.values())).toBe(2);
  }, 90_000);

  test("a held job says why and for which key; the key's view counts it", async () => {
    const ids = await bulk(Array.from({ length: 3 }, () => ({ name: "sleep", data: { ms: 1500 }, opts: { concurrency: { key: "one", limit: 1 } } })));
    const held = await api.http("GET", `/v1/jobs/${ids[2]}`);
    expect(held.status).toBe(200);
    expect(held.body.status).toBe("pending");
    expect(held.body.waitingFor).toEqual({ reason: "concurrency", key: "one" });
    const limits = await api.http("GET", "/v1/limits");
    expect(limits.status).toBe(200);
    const one = (limits.body.items as { key: string }[]).find((k) => k.key === "one");
    expect(one).toMatchObject({ key: "one", concurrency: 1, rateLimit: null, running: 1, waiting: 2 });
    // Raising the limit releases the waiting jobs at once.
    const put = await api.http("PUT", "/v1/limits/one", { concurrency: 3 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ key: "one", concurrency: 3, waiting: 0, running: 3 });
    await waitFor(async () => (await unfinished(ids)) === 0, 20_000, "the key's jobs finished");
    const peaks = await peakPerKey(ids);
    expect(peaks.get("one")).toBeGreaterThanOrEqual(2);
  }, 30_000);
});
