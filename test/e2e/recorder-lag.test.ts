import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { RECORDER_LEASE } from "../../src/services/recorder-health";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// The API alone, with a one-second bound on the recorder's backlog. The test itself plays a recorder
// that holds the lease and never reads, which is what a recorder that cannot keep up looks like
// from outside; a real worker then catches up and creates are let in again.
let stack: Stack;
let lease: postgres.Sql;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "lag", env: { FLOWD_RECORDER_MAX_LAG_MS: "1000" } });
  lease = postgres(stack.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await lease?.end();
  await stack?.stop();
});

const readyz = async () => (await fetch(`${stack.baseUrl}/readyz`)).json() as Promise<any>;
let accepted = 0;
const createJob = async (i: number) => {
  const r = await stack.http("POST", "/v1/jobs", { name: "echo", data: { i } });
  if (r.status === 201) accepted++;
  return r;
};
const countJobs = async () => Number((await stack.database.sql`select count(*)::int as n from jobs`)[0]!.n);

describe("a status recorder that falls behind", () => {
  test("with nobody recording, /readyz is degraded with the reason and creates are still taken", async () => {
    expect((await createJob(0)).status).toBe(201);
    const body = await waitFor(async () => {
      const b = await readyz();
      return b.status === "degraded" && b;
    }, 15_000, "readyz degraded");
    expect(body.degraded.join(" ")).toContain("No status recorder is running");
    expect(body.recorder.alive).toBe(false);
    expect((await createJob(1)).status).toBe(201);
  });

  test("a live recorder past FLOWD_RECORDER_MAX_LAG_MS: creates answer 503 overloaded with Retry-After and write nothing", async () => {
    await lease`select pg_advisory_lock(${RECORDER_LEASE})`;
    const body = await waitFor(async () => {
      const b = await readyz();
      return b.recorder?.alive && b.recorder.lagMs > 1000 && b;
    }, 15_000, "readyz showing a live recorder more than 1 s behind");
    expect(body.status).toBe("degraded");
    expect(body.degraded.join(" ")).toContain("behind");

    // The API looks at the backlog it last read (every 2 s), so the refusals start within that.
    await waitFor(async () => (await createJob(2)).status === 503, 15_000, "a create refused for the recorder's lag");
    const before = await countJobs();
    const refused = await createJob(3);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("overloaded");
    expect(refused.body.error.message).toContain("FLOWD_RECORDER_MAX_LAG_MS");
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await countJobs()).toBe(before);
    expect(before).toBe(accepted);

    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/flowd_creates_refused_total\{limit="recorder_lag"\} [1-9]/);
    expect(metrics).toMatch(/flowd_recorder_backlog_seconds\{queue="[^"]+"\} [1-9]/);
  });

  test("once a real recorder takes over and catches up, creates are let in and every job is recorded", async () => {
    await lease`select pg_advisory_unlock(${RECORDER_LEASE})`;
    await stack.startWorker();
    await waitFor(async () => (await createJob(4)).status === 201, 30_000, "a create let in after the recorder caught up");
    expect((await readyz()).status).toBe("ready");
    await waitFor(
      async () => Number((await stack.database.sql`select count(*)::int as n from jobs where status <> 'completed'`)[0]!.n) === 0,
      30_000,
      "every job completed in Postgres",
    );
    expect(await countJobs()).toBe(accepted);
  });
});
