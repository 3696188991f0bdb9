import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { insertFlow, type FlowJobRow } from "../../src/db/queries/flows";
import { planFlow } from "../../src/services/flow-spec";
import { newId } from "../../src/ids";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startCountingReceiver } from "../helpers/receiver";

// An API that dies right after committing a flow, before adding it to Redis: only the rows exist.
let cluster: Cluster;
const receiver = startCountingReceiver();
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "crashadd" });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  receiver.stop();
});

describe("a crash between the Postgres commit and the Redis add", () => {
  test("the committed flow still runs, once", async () => {
    const [{ user_id: userId } = { user_id: "" }] = await cluster.database.sql<{ user_id: string }[]>`select user_id from api_tokens limit 1`;
    const planned = planFlow(
      { name: "echo", children: [{ name: "http", data: { url: receiver.url("/after-crash"), method: "POST" } }] },
      { flowQueues: ["flows"], maxFlowJobs: 1000, maxFlowDepth: 32 },
    );
    const flowId = newId();
    const now = new Date();
    // Exactly what createFlow commits before it talks to Redis.
    await insertFlow(
      cluster.database.db,
      { id: flowId, userId, name: "orphaned", rootId: planned[0]!.id, jobCount: planned.length, createdAt: now, updatedAt: now },
      planned.map((p) => ({ ...p, userId, flowId, status: "pending", children: p.children }) as unknown as FlowJobRow),
    );
    const done = await cluster.apis[0]!.http("GET", `/v1/flows/${flowId}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(receiver.hits.get("/after-crash")).toBe(1);
    expect(cluster.workers[0]!.lines.some((l) => l.includes("enqueued pending flow"))).toBe(true);
  }, 60_000);
});
