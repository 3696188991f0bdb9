import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runFlowd } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * A handler module's defaults for its jobs' opts (`concurrency`, `rateLimit`, `expireAfterMs`) with
 * a real API, a worker process, Postgres and Redis: registered by the worker, merged in by the API
 * on every create path, a job's own opts winning field by field; bad defaults stop the worker with
 * one line.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-handler-defaults-"));

const MODULE = `
export default {
  // One at a time across every worker, unless a job says otherwise.
  partner: {
    concurrency: { key: "partner-api", limit: 1 },
    expireAfterMs: 600000,
    run: (ctx: { data: { ms?: number } }) => new Promise((r) => setTimeout(() => r({ ok: true }), ctx.data.ms ?? 150)),
  },
  metered: {
    rateLimit: { key: "metered-api", max: 50, perMs: 1000 },
    run: () => ({ ok: true }),
  },
};
`;

let stack: Stack;

beforeAll(async () => {
  writeFileSync(join(dir, "partner.ts"), MODULE);
  stack = await startStack({ tag: "hdefaults", env: { FLOWD_HANDLERS: join(dir, "partner.ts"), WORKER_CONCURRENCY: "8" } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const sql = () => stack.database.sql;

/** The most of these runs that overlapped, from their started_at / finished_at. */
function peak(rows: { started: number; finished: number }[]) {
  const list = rows.flatMap((r) => [[r.started, 1], [r.finished, -1]] as [number, number][]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of list) most = Math.max(most, (now += d));
  return most;
}

/** Creates once the API knows the module's handlers (the worker registers them a moment after it is ready). */
async function create(path: string, body: unknown) {
  const res = await waitFor(async () => {
    const r = await stack.http("POST", path, body);
    return r.status === 400 && r.body.error.code === "unknown_handler" ? null : r;
  }, 30_000, "the API to know the module's handlers");
  expect(res.status).toBe(201);
  return res.body;
}

type Row = { id: string; status: string; opts: Record<string, unknown>; keys: string[] | null; rate: string | null; started: number; finished: number };

describe("a handler module's defaults for its jobs' opts", () => {
  test("concurrency { key, limit: 1 }: 5 jobs created without opts never run more than 1 at once, and all complete", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await create("/v1/jobs", { name: "partner", data: { ms: 200 } })).id);
    await waitFor(async () => {
      const [row] = await sql()<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`;
      return row!.n === 5;
    }, 60_000, "the 5 jobs to complete");
    const rows = await sql()<Row[]>`
      select id, status, opts, concurrency_keys as keys, rate_key as rate,
        extract(epoch from started_at)::float8 * 1000 as started, extract(epoch from finished_at)::float8 * 1000 as finished
      from jobs where id = any(${ids})`;
    expect(rows.length).toBe(5);
    expect(peak(rows)).toBe(1);
    for (const r of rows) {
      expect(r.keys).toEqual(["partner-api"]);
      expect(r.opts).toMatchObject({ concurrency: { key: "partner-api", limit: 1 }, expireAfterMs: 600000 });
    }
    const [key] = await sql()<{ concurrency: number }[]>`select concurrency from limit_keys where key = 'partner-api'`;
    expect(key!.concurrency).toBe(1);
  }, 120_000);

  test("a job's own opts win field by field: its concurrency replaces the default whole, the other defaults stay", async () => {
    const job = await create("/v1/jobs", { name: "partner", data: { ms: 10 }, opts: { concurrency: { key: "own-key", limit: 3 }, expireAfterMs: 5000 } });
    const bare = await create("/v1/jobs", { name: "partner", data: { ms: 10 }, opts: { attempts: 2 } });
    const [own] = await sql()<Row[]>`select opts, concurrency_keys as keys from jobs where id = ${job.id}`;
    expect(own!.keys).toEqual(["own-key"]);
    expect(own!.opts).toEqual({ concurrency: { key: "own-key", limit: 3 }, expireAfterMs: 5000 });
    const [mixed] = await sql()<Row[]>`select opts, concurrency_keys as keys from jobs where id = ${bare.id}`;
    expect(mixed!.opts).toEqual({ attempts: 2, concurrency: { key: "partner-api", limit: 1 }, expireAfterMs: 600000 });
    for (const id of [job.id, bare.id]) expect((await stack.http("GET", `/v1/jobs/${id}?wait=30`)).body.status).toBe("completed");
  }, 60_000);

  test("flow trees, graphs and bulk creates get the defaults too; built-ins get none", async () => {
    const tree = await create("/v1/flows", { name: "tree", root: { name: "echo", children: [{ name: "partner", data: { ms: 10 } }, { name: "metered" }] } });
    const graph = await create("/v1/flows", { name: "graph", jobs: [{ key: "a", name: "partner", data: { ms: 10 } }, { key: "b", name: "partner", data: { ms: 10 }, dependsOn: ["a"], opts: { concurrency: { key: "graph-own", limit: 2 } } }] });
    const bulk = await create("/v1/jobs/bulk", { jobs: [{ name: "metered" }, { name: "echo" }] });
    for (const id of [tree.id, graph.id]) expect((await stack.http("GET", `/v1/flows/${id}?wait=60`)).body.status).toBe("completed");
    const flowRows = await sql()<{ name: string; key: string | null; keys: string[] | null; rate: string | null }[]>`
      select name, key, concurrency_keys as keys, rate_key as rate from flow_jobs where flow_id = any(${[tree.id, graph.id]})`;
    const order = (x: { name: string; key: string | null }, y: { name: string; key: string | null }) => (x.name + (x.key ?? "")).localeCompare(y.name + (y.key ?? ""));
    expect([...flowRows].sort(order)).toEqual([
      { name: "echo", key: null, keys: null, rate: null },
      { name: "metered", key: null, keys: null, rate: "metered-api" },
      { name: "partner", key: null, keys: ["partner-api"], rate: null },
      { name: "partner", key: "a", keys: ["partner-api"], rate: null },
      { name: "partner", key: "b", keys: ["graph-own"], rate: null },
    ].sort(order));
    const bulkRows = await sql()<{ name: string; rate: string | null; opts: Record<string, unknown> }[]>`
      select name, rate_key as rate, opts from jobs where id = any(${bulk.items.map((j: { id: string }) => j.id)}) order by name`;
    expect([...bulkRows]).toEqual([
      { name: "echo", rate: null, opts: {} },
      { name: "metered", rate: "metered-api", opts: { rateLimit: { key: "metered-api", max: 50, perMs: 1000 } } },
    ]);
  }, 120_000);

  test("a definition run by name and a schedule's firing get the defaults, read when the job is made", async () => {
    const put = await waitFor(async () => {
      const r = await stack.http("PUT", "/v1/definitions/partner-run", { flow: { jobs: [{ key: "p", name: "partner", data: { ms: 10 } }] } });
      return r.status === 400 && r.body.error.code === "unknown_handler" ? null : r;
    }, 30_000, "the API to know the module's handlers");
    expect(put.status).toBe(201);
    const run = await create("/v1/definitions/partner-run/runs", {});
    expect((await stack.http("GET", `/v1/flows/${run.id}?wait=60`)).body.status).toBe("completed");
    const [p] = await sql()<{ keys: string[] | null; opts: Record<string, unknown> }[]>`select concurrency_keys as keys, opts from flow_jobs where flow_id = ${run.id}`;
    expect(p).toEqual({ keys: ["partner-api"], opts: { concurrency: { key: "partner-api", limit: 1 }, expireAfterMs: 600000 } });
    // The schedule keeps the job as sent; each firing's job gets the handler's defaults.
    const schedule = await create("/v1/schedules", { name: "metered tick", every: 1000, job: { name: "metered" } });
    expect(schedule.job?.opts ?? {}).toEqual({});
    const fired = await waitFor(async () => {
      const rows = await sql()<{ rate: string | null; opts: Record<string, unknown>; status: string }[]>`
        select rate_key as rate, opts, status from jobs where schedule_id = ${schedule.id} and status = 'completed' limit 1`;
      return rows[0];
    }, 60_000, "a firing's job to complete");
    expect(fired).toEqual({ rate: "metered-api", opts: { rateLimit: { key: "metered-api", max: 50, perMs: 1000 } }, status: "completed" });
    expect((await stack.http("DELETE", `/v1/schedules/${schedule.id}`)).status).toBe(204);
  }, 120_000);

  test("bad defaults stop the worker: exit 1, one line naming the handler and the field", async () => {
    const cases: [string, string, RegExp][] = [
      ["limit 0", `concurrency: { key: "k", limit: 0 }`, /handler 'bad': concurrency\.limit must be a whole number between 1 and 1000; got 0$/],
      ["empty key", `concurrency: { key: "", limit: 2 }`, /handler 'bad': concurrency\.key must be a string of 1 to 128 characters/],
      ["4 keys", `concurrency: [1, 2, 3, 4].map((i) => ({ key: "k" + i, limit: 1 }))`, /handler 'bad': concurrency must name 1 to 3 keys; got 4$/],
      ["a key twice", `concurrency: [{ key: "k", limit: 1 }, { key: "k", limit: 2 }]`, /handler 'bad': concurrency\[1\]\.key 'k' is named twice/],
      ["rateLimit without perMs", `rateLimit: { key: "r", max: 5 }`, /handler 'bad': rateLimit\.perMs must be a whole number between 1 and 86400000; got nothing$/],
      ["an unknown field", `rateLimit: { key: "r", max: 5, perMs: 1000, burst: 2 }`, /handler 'bad': rateLimit has an unknown field 'burst'/],
      ["expireAfterMs beyond 7 days", `expireAfterMs: 604800001`, /handler 'bad': expireAfterMs must be a whole number between 1 and 604800000; got 604800001$/],
    ];
    for (const [what, field, message] of cases) {
      const file = join(dir, `bad-${what.replace(/\W+/g, "-")}.ts`);
      writeFileSync(file, `export default { bad: { run() { return 1; }, ${field} } };\n`);
      const run = await runFlowd(["--role=worker"], { ...stack.env, FLOWD_HANDLERS: file, LOG_LEVEL: "info" });
      expect({ what, code: run.code }).toEqual({ what, code: 1 });
      const lines = run.stderr.trim().split("\n");
      expect({ what, lines: lines.length }).toEqual({ what, lines: 1 });
      expect(lines[0]).toStartWith(`flowd: handler module ${file}, handler 'bad': `);
      expect(lines[0]).toMatch(message);
      expect(run.stdout).not.toContain("flowd ready");
    }
  }, 120_000);
});
