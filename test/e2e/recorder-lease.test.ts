import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import type { FlowdProcess } from "../helpers/process";
import { waitFor } from "../helpers/wait";

// Two worker processes: one records statuses, the other stands by and takes over when it dies.
let cluster: Cluster;
beforeAll(async () => {
  // Short locks, so a job the killed worker held runs again within seconds rather than 30 s.
  cluster = await startCluster({ apis: 1, workers: 2, tag: "lease", env: { FLOWD_LOCK_DURATION_MS: "2000", FLOWD_STALLED_INTERVAL_MS: "1000" } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const tookLease = (w: FlowdProcess) => w.lines.filter((l) => l.includes('"took the lease"') && l.includes("status-recorder")).length;

describe("the status recorder's lease", () => {
  test("one worker records; when it is killed the other takes over and nothing is lost", async () => {
    const api = cluster.apis[0]!;
    await waitFor(() => cluster.workers.some((w) => tookLease(w) > 0), 10_000, "a worker to take the lease");
    const [leader, standby] = cluster.workers[0] && tookLease(cluster.workers[0]) > 0 ? [cluster.workers[0]!, cluster.workers[1]!] : [cluster.workers[1]!, cluster.workers[0]!];
    expect(tookLease(standby)).toBe(0);

    const before = await api.http("POST", "/v1/flows", { name: "before", root: { name: "echo", children: [{ name: "echo" }] } });
    expect((await api.http("GET", `/v1/flows/${before.body.id}?wait=20`)).body.status).toBe("completed");
    // A flow still running while the leader dies: the standby must record the rest of it.
    const during = await api.http("POST", "/v1/flows", { name: "during", root: { name: "echo", children: [{ name: "sleep", data: { ms: 1500 } }] } });
    await waitFor(async () => (await api.http("GET", `/v1/flows/${during.body.id}`)).body.root.children[0].status === "active", 10_000, "the sleep to start");
    leader.proc.kill("SIGKILL");
    await leader.proc.exited;
    cluster.workers.splice(cluster.workers.indexOf(leader), 1);
    const killedAt = Date.now();

    await waitFor(() => tookLease(standby) > 0, 10_000, "the standby to take the lease");
    const after = await api.http("POST", "/v1/flows", { name: "after", root: { name: "echo", children: [{ name: "echo" }] } });
    expect((await api.http("GET", `/v1/flows/${after.body.id}?wait=30`)).body.status).toBe("completed");
    console.log(`the standby took over and recorded a new flow ${Date.now() - killedAt} ms after the leader was killed`);
    // Whichever worker ran the sleep (a killed one's job runs again once its lock lapses), the
    // standby records how it ended.
    expect((await api.http("GET", `/v1/flows/${during.body.id}?wait=30`)).body.status).toBe("completed");
  }, 90_000);
});
