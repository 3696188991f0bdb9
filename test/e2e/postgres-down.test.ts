import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import { startFreezableProxy } from "../helpers/tcp-proxy";
import { waitFor } from "../helpers/wait";

// An API process whose Postgres goes away (every connection reset, new ones refused) and comes back.
let cluster: Cluster;
let proxy: Awaited<ReturnType<typeof startFreezableProxy>>;
let api: ApiProcess;
beforeAll(async () => {
  proxy = await startFreezableProxy({ host: "127.0.0.1", port: 5432 });
  cluster = await startCluster({ apis: 0, workers: 1, tag: "pgdown" });
  const url = new URL(cluster.env.DATABASE_URL!);
  url.port = String(proxy.port);
  api = await cluster.startApi({ DATABASE_URL: url.toString() });
}, 60_000);
afterAll(async () => {
  proxy?.restore();
  await cluster?.stop();
  await proxy?.stop();
});

const flow = (name: string) => ({ name, root: { name: "echo", children: [{ name: "echo" }] } });

describe("Postgres down under an API process", () => {
  test("requests answer 503 postgres_unavailable, nothing is half-written, and service resumes", async () => {
    const ok = await api.http("POST", "/v1/flows", flow("before"));
    expect(ok.status).toBe(201);
    expect((await api.http("GET", `/v1/flows/${ok.body.id}?wait=20`)).body.status).toBe("completed");

    proxy.cut();
    const listed = await api.http("GET", "/v1/flows");
    expect(listed.status).toBe(503);
    expect(listed.body.error.code).toBe("postgres_unavailable");
    expect(listed.body.error.message).toContain("retry");
    const refused = await api.http("POST", "/v1/flows", flow("during"));
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("postgres_unavailable");
    const ready = await api.http("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect((await api.http("GET", "/healthz")).status).toBe(200);

    proxy.restore();
    const restoredAt = Date.now();
    await waitFor(async () => (await api.http("GET", "/v1/flows")).status === 200, 20_000, "the API to reach Postgres again");
    console.log(`API answered again ${Date.now() - restoredAt} ms after Postgres came back`);
    const after = await api.http("POST", "/v1/flows", flow("after"));
    expect(after.status).toBe(201);
    expect((await api.http("GET", `/v1/flows/${after.body.id}?wait=20`)).body.status).toBe("completed");
    // The refused create left nothing behind.
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from flows where name = 'during'`;
    expect(row!.n).toBe(0);
  }, 90_000);
});
