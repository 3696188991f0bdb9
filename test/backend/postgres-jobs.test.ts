import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connectWs } from "../helpers/ws-client";
import { waitFor } from "../helpers/wait";
import { mentionsRedisError, startPgStack, type PgStack } from "./pg-stack";

let s: PgStack;
beforeAll(async () => {
  s = await startPgStack();
});
afterAll(async () => {
  await s?.stop();
});

describe("single jobs on the Postgres backend", () => {
  test("a job created over REST runs, is recorded completed in Postgres, and the socket sees it", async () => {
    const socket = await connectWs(`ws://127.0.0.1:${s.port}/v1/ws`, s.token);
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");

    const created = await s.http("POST", "/v1/jobs", { name: "echo", data: { x: 1 } });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const done = await waitFor(async () => {
      const r = await s.http("GET", `/v1/jobs/${id}`);
      return r.body.status === "completed" && r.body;
    }, 30_000, "the job to complete");
    expect(done.result).toEqual({ data: { x: 1 }, children: {} });
    const event = await socket.next((m) => m.type === "job" || (JSON.stringify(m).includes(id) && JSON.stringify(m).includes("completed")), 20_000);
    expect(JSON.stringify(event)).toContain(id);
    socket.close();

    // BullMQ's own tables hold the job, in its schema of flowd's database.
    const [row] = await s.sql`select state::text from bullmq.job where queue = 'jobs' and id = ${done.jobId}`;
    expect(row?.state).toBe("completed");
  });

  test("a failing job is recorded failed with BullMQ's attempts and its stack", async () => {
    const created = await s.http("POST", "/v1/jobs", { name: "fail", data: { message: "boom" }, opts: { attempts: 2, backoff: { type: "fixed", delay: 10 } } });
    expect(created.status).toBe(201);
    const failed = await waitFor(async () => {
      const r = await s.http("GET", `/v1/jobs/${created.body.id}`);
      return r.body.status === "failed" && r.body;
    }, 30_000, "the job to fail");
    expect(failed.error.message).toContain("boom");
    expect(failed.error.attemptsMade).toBe(2);
    // The stack is read from BullMQ's job row, as it is from the job's hash on Redis.
    expect(failed.error.stack).toContain("boom");
  });

  test("a burst of jobs is recorded without losing one (events read by transaction, not by id)", async () => {
    const n = 300;
    const r = await s.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: n }, (_, i) => ({ name: "echo", data: { i } })) });
    expect(r.status).toBe(201);
    const ids: string[] = r.body.items.map((j: { id: string }) => j.id);
    expect(ids).toHaveLength(n);
    await waitFor(async () => {
      const [row] = await s.sql`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`;
      return row!.n === n;
    }, 60_000, "every job to be recorded completed");
  });

  test("no Redis connection was needed: Redis's address has nothing listening", async () => {
    // Nothing listens there: a connection attempt would be refused.
    const refused = await Bun.connect({ hostname: "127.0.0.1", port: s.deadRedisPort, socket: { data() {} } }).then(
      (sock) => (sock.end(), false),
      () => true,
    );
    expect(refused).toBe(true);
    expect(mentionsRedisError(s.logs())).toBe(false);
    expect(s.logs()).toContain("no Redis connection is opened");
  });

  test("/readyz answers ready with the backend named", async () => {
    const r = await s.http("GET", "/readyz", undefined, { token: null });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ postgres: "ok", queueBackend: "postgres" });
    expect(r.body.redis).toBeUndefined();
  });
});
