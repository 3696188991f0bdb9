import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startCountingReceiver } from "../helpers/receiver";
import { waitFor } from "../helpers/wait";

// An API process killed with SIGKILL while 16 clients create jobs as fast as they can (single
// creates share inserts and adds: group commit) and a bulk create is in flight. Rows may have been
// committed whose 201 never left, or whose add was never sent; none may be lost, and none run twice.
let cluster: Cluster;
const receiver = startCountingReceiver();
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "apikill", env: { FLOWD_MAX_CREATES_IN_FLIGHT: "64" } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  receiver.stop();
});

const job = (key: string) => ({ name: "http", data: { url: receiver.url(`/k/${key}`), method: "POST", body: {} } });

describe("the API killed with kill -9 in the middle of a burst of creates", () => {
  test("every accepted job completes once; jobs whose answer was lost complete once too; nothing runs without a row", async () => {
    const api = cluster.apis[0]!;
    const accepted = new Set<string>();
    let singles = 0;
    let sent = 0;
    let stop = false;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        sent++;
        const res = await api.http("POST", "/v1/jobs", job(`${c}-${i}`)).catch(() => null);
        if (res?.status === 201) {
          accepted.add(res.body.id);
          singles++;
        }
      }
    };
    const bulk = api
      .http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: 500 }, (_, i) => job(`bulk-${i}`)) })
      .then((res) => res.status === 201 && res.body.items.forEach((j: any) => accepted.add(j.id)))
      .catch(() => null);
    const clients = Array.from({ length: 16 }, (_, c) => client(c));
    await waitFor(() => singles >= 300, 30_000, "300 single creates accepted");
    api.proc.proc.kill("SIGKILL");
    stop = true;
    await Promise.all([...clients, bulk]);
    await api.proc.proc.exited;

    // Whatever Postgres holds is what was accepted (some rows' answers may never have left).
    const rows = await cluster.database.sql<{ id: string; url: string }[]>`select id, data->>'url' as url from jobs`;
    const rowIds = new Set(rows.map((r) => r.id));
    for (const id of accepted) expect(rowIds.has(id)).toBe(true);
    expect(rows.length).toBeGreaterThanOrEqual(accepted.size);

    // The worker's enqueuer adds what the dead API left `pending`; every row completes.
    await waitFor(
      async () => (await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where status <> 'completed'`)[0]!.n === 0,
      90_000,
      `all ${rows.length} rows completed`,
    );
    const paths = rows.map((r) => new URL(r.url).pathname);
    const runs = paths.map((p) => receiver.hits.get(p) ?? 0);
    expect(runs.filter((n) => n !== 1)).toEqual([]);
    // No handler ran for a job without a row.
    const rowPaths = new Set(paths);
    expect([...receiver.hits.keys()].filter((p) => p.startsWith("/k/") && !rowPaths.has(p))).toEqual([]);
    console.log(`single creates sent ${sent}, answered 201 ${singles}; accepted in all ${accepted.size}; rows ${rows.length}; every row ran once`);
  }, 150_000);
});
