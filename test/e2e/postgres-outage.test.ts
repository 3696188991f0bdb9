import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { connectWs } from "../helpers/ws-client";

// Every flowd connection to Postgres killed in the middle of a flow: writes, events and sockets resume.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "pgkill" });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("Postgres connections terminated", () => {
  test("mid-flow: status writes resume, the flow completes, and the socket misses no event", async () => {
    const api = cluster.apis[0]!;
    const socket = await connectWs(api.wsUrl, cluster.token);
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");

    const created = await api.http("POST", "/v1/flows", {
      name: "through the outage",
      root: { name: "echo", children: Array.from({ length: 30 }, (_, i) => ({ name: "sleep", data: { ms: 50 * (i % 10) } })) },
    });
    expect(created.status).toBe(201);
    // Kill every other backend of this database (the API's pool, the worker's, both LISTEN connections).
    const killed = await cluster.database.sql<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
    await cluster.database.sql`select pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()`;
    expect(killed.length).toBeGreaterThan(2);

    const done = await socket.next((m) => m.type === "event" && m.event === "flow.completed" && m.flowId === created.body.id, 45_000);
    expect(done.status).toBe("completed");
    const flow = await api.http("GET", `/v1/flows/${created.body.id}`);
    expect(flow.body.status).toBe("completed");
    expect(flow.body.root.children.every((c: { status: string }) => c.status === "completed")).toBe(true);
    // What the socket got is exactly what the log holds for the flow.
    const log = await api.http("GET", `/v1/events?flowId=${created.body.id}&limit=1000`);
    const seen = socket.messages.filter((m) => m.type === "event" && m.flowId === created.body.id).map((m) => m.seq);
    expect(seen).toEqual(log.body.items.map((e: { seq: number }) => e.seq));
    socket.close();
  }, 60_000);
});
