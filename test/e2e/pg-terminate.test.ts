import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

// Every backend of the deployment's database killed with pg_terminate_backend, twenty times, each
// while a flow runs: the recorder (and its lease) must come back each time and move on.
let cluster: Cluster;
let admin: postgres.Sql;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "pgterm" });
  admin = postgres(cluster.env.DATABASE_URL!.replace(/\/[^/]+$/, "/postgres"), { max: 1, onnotice: () => {} });
}, 60_000);
afterAll(async () => {
  await admin?.end({ timeout: 1 });
  await cluster?.stop();
});

const ROUNDS = 20;

async function cursor(): Promise<string | null> {
  const [row] = await cluster.database.sql<{ last_id: string }[]>`select last_id from stream_cursors where queue = 'flows'`;
  return row?.last_id ?? null;
}

const later = (a: string, b: string | null) => {
  if (b === null) return true;
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am! > bm! || (am === bm && as! > bs!);
};

describe("Postgres backends terminated during a run", () => {
  test(`${ROUNDS} rounds: after each, the recorder's position advances and the flow completes`, async () => {
    const api = cluster.apis[0]!;
    const dbName = new URL(cluster.env.DATABASE_URL!).pathname.slice(1);
    for (let round = 0; round < ROUNDS; round++) {
      const before = await waitFor(async () => ({ id: await cursor() }), 10_000, "the cursor read");
      const created = await waitFor(async () => {
        const res = await api.http("POST", "/v1/flows", {
          name: `round ${round}`,
          root: { name: "echo", data: { round }, children: Array.from({ length: 50 }, (_, i) => ({ name: "sleep", data: { ms: (i % 5) * 10 } })) },
        });
        return res.status === 201 && res.body;
      }, 15_000, "a flow accepted");
      const [killed] = await admin<{ n: number }[]>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = ${dbName} and pid <> pg_backend_pid()`;
      expect(killed!.n).toBeGreaterThan(0);
      await waitFor(async () => {
        const flow = await api.http("GET", `/v1/flows/${created.id}?wait=2`);
        return flow.status === 200 && flow.body.status === "completed";
      }, 60_000, `round ${round}: the flow completed`);
      await waitFor(async () => later((await cursor())!, before.id), 30_000, `round ${round}: the recorder's position advanced`);
    }
    const [rows] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where status <> 'completed'`;
    expect(rows!.n).toBe(0);
    // Nothing the driver threw escaped as a line that is not JSON.
    const raw = cluster.workers[0]!.lines.filter((l) => l.trim() !== "" && !l.startsWith("{"));
    expect(raw).toEqual([]);
    expect(cluster.workers[0]!.stderr()).not.toContain("TypeError");
  }, 600_000);
});
