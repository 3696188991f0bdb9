import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { waitFor } from "../helpers/wait";
import { mentionsRedisError, startPgStack, type PgStack } from "./pg-stack";

let s: PgStack;
// A killed worker's jobs are free again within about lock + interval.
const fast = { FLOWD_LOCK_DURATION_MS: "2000", FLOWD_STALLED_INTERVAL_MS: "1000" };
beforeAll(async () => {
  s = await startPgStack({ role: "split", env: fast });
});
afterAll(async () => {
  await s?.stop();
});

describe("a worker killed with SIGKILL on the Postgres backend", () => {
  test("its running jobs run again elsewhere, and the new recorder goes on from the stored cursor: every job ends recorded", async () => {
    const n = 200;
    const r = await s.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: n }, (_, i) => ({ name: "sleep", data: { ms: 40, i } })) });
    expect(r.status).toBe(201);
    const ids: string[] = r.body.items.map((j: { id: string }) => j.id);
    const completed = async () => (await s.sql`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`)[0]!.n as number;
    // Part of the way through: some recorded, some running, most waiting.
    await waitFor(async () => (await completed()) >= 20, 30_000, "some jobs to complete");
    const victim = s.procs[1]!;
    victim.proc.kill("SIGKILL");
    await victim.proc.exited;
    const before = await completed();
    expect(before).toBeLessThan(n);
    await s.start("worker", { PORT: "0" });
    await waitFor(async () => (await completed()) === n, 90_000, "every job to be recorded completed");
    // The position is stored under the schema's name, as `<transaction>-<event id>`, apart from any Redis stream's.
    const [cursor] = await s.sql`select last_id from stream_cursors where queue = 'bullmq.jobs'`;
    expect(cursor!.last_id).toMatch(/^\d+-\d+$/);
    // The new recorder read on from the stored cursor: the backlog is gone.
    await waitFor(async () => {
      const ready = await s.http("GET", "/readyz", undefined, { token: null });
      return ready.body.recorder?.alive && ready.body.recorder.lagMs === 0;
    }, 30_000, "the recorder to catch up");
    expect(mentionsRedisError(s.logs())).toBe(false);
  });
});
