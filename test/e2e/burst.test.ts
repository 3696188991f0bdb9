import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { connectWs } from "../helpers/ws-client";
import { waitFor } from "../helpers/wait";

// Two API and two worker processes under a burst of flows, watched from sockets on both APIs.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 2, workers: 2, tag: "burst" });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
});

const FLOWS = 200;

describe("a burst across processes", () => {
  test(`${FLOWS} flows through two APIs and two workers: all complete, every socket event exactly once`, async () => {
    const sockets = await Promise.all(cluster.apis.map((a) => connectWs(a.wsUrl, cluster.token)));
    for (const s of sockets) s.send({ op: "subscribe", all: true });
    await Promise.all(sockets.map((s) => s.next((m) => m.type === "subscribed")));

    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        for (let i = client; i < FLOWS; i += 8) {
          const api = cluster.apis[i % 2]!;
          const res = await api.http("POST", "/v1/flows", {
            name: `burst ${i}`,
            root: { name: "echo", data: { i }, children: [{ name: "echo", data: { c: 1 } }, { name: "sleep", data: { ms: 5 } }] },
          });
          expect(res.status).toBe(201);
          ids.push(res.body.id);
        }
      }),
    );

    const completed = (s: (typeof sockets)[number]) =>
      new Set(s.messages.filter((m) => m.type === "event" && m.event === "flow.completed").map((m) => m.flowId));
    await waitFor(() => sockets.every((s) => ids.every((id) => completed(s).has(id))), 90_000, "every flow.completed on both sockets");

    const [{ n } = { n: -1 }] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flows where status = 'completed'`;
    expect(n).toBe(FLOWS);
    // Both sockets saw exactly the log: same events, each once, in seq order.
    const log = await cluster.database.sql<{ s: string }[]>`select seq::text as s from events order by events.seq`;
    const expected = log.map((r) => Number(r.s));
    for (const s of sockets) {
      const seqs = s.messages.filter((m) => m.type === "event").map((m) => m.seq as number);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(seqs).toEqual(expected);
      s.close();
    }
  }, 150_000);
});
