import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { insertFlow, type FlowJobRow } from "../../src/db/queries/flows";
import { planFlow } from "../../src/services/flow-spec";
import { builtinRegistry } from "../../src/services/handler-registry";
import { newId } from "../../src/ids";
import { insertJobs } from "../../src/db/queries/jobs";
import { newJobRow } from "../../src/services/jobs";
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
      // The receiver is on loopback, which the cluster allows (FLOWD_ALLOW_PRIVATE_URLS).
      builtinRegistry({ flowQueues: ["flows"], externalQueues: [], allowPrivateUrls: true }),
    );
    const flowId = newId();
    const now = new Date();
    // What createFlow commits before an add that failed is marked pending.
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

  test("a flow and a job committed at their queued status (as createFlow and createJob write them), never added, still run once", async () => {
    const [{ user_id: userId } = { user_id: "" }] = await cluster.database.sql<{ user_id: string }[]>`select user_id from api_tokens limit 1`;
    const planned = planFlow(
      { name: "echo", children: [{ name: "http", data: { url: receiver.url("/queued-crash"), method: "POST" } }] },
      { flowQueues: ["flows"], maxFlowJobs: 1000, maxFlowDepth: 32 },
      // The receiver is on loopback, which the cluster allows (FLOWD_ALLOW_PRIVATE_URLS).
      builtinRegistry({ flowQueues: ["flows"], externalQueues: [], allowPrivateUrls: true }),
    );
    const flowId = newId();
    const now = new Date();
    // Exactly what createFlow commits before it talks to Redis: each row where the add would put it.
    await insertFlow(
      cluster.database.db,
      { id: flowId, userId, name: "queued, never added", rootId: planned[0]!.id, jobCount: planned.length, createdAt: now, updatedAt: now },
      planned.map((p, i) => ({ ...p, userId, flowId, status: i === 0 ? "waiting-children" : "waiting" }) as unknown as FlowJobRow),
    );
    const jobId = newId();
    await insertJobs(cluster.database.db, [
      newJobRow(userId, { name: "http", data: { url: receiver.url("/queued-crash-job"), method: "POST" } }, { id: jobId, status: "waiting" }),
    ]);
    // The reconciler finds them queued in Postgres and missing from Redis (every 10 s, after 5 s).
    const done = await cluster.apis[0]!.http("GET", `/v1/flows/${flowId}?wait=45`);
    expect(done.body.status).toBe("completed");
    const job = await cluster.apis[0]!.http("GET", `/v1/jobs/${jobId}?wait=30`);
    expect(job.body.status).toBe("completed");
    expect(receiver.hits.get("/queued-crash")).toBe(1);
    expect(receiver.hits.get("/queued-crash-job")).toBe(1);
  }, 90_000);
});
