import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import type { HttpReply } from "../helpers/http";
import { connectWs, type WsClient } from "../helpers/ws-client";
import { waitFor } from "../helpers/wait";

// Single jobs through real processes: one API process and one worker process on a database and
// prefix of their own.
let cluster: Cluster;
let api: ApiProcess;
let redis: IORedis;
let jobsQueue: Queue;
const clients: WsClient[] = [];

beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "jobs" });
  api = cluster.apis[0]!;
  redis = new IORedis(cluster.env.REDIS_URL!, { maxRetriesPerRequest: null });
  jobsQueue = new Queue("jobs", { connection: redis, prefix: cluster.prefix });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await jobsQueue?.close();
  redis?.disconnect();
  await cluster?.stop();
});

type Token = string | undefined;

const create = async (body: unknown, token?: Token, headers?: Record<string, string>) =>
  api.http("POST", "/v1/jobs", body, { token, headers });

const created = async (body: unknown, token?: Token): Promise<string> => {
  const res = await create(body, token);
  if (res.status !== 201) throw new Error(`expected 201, got ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body.id as string;
};

/** The job once it finished (GET with ?wait), asserting it did within the wait. */
const finished = async (id: string, token?: Token) => {
  const res = await api.http("GET", `/v1/jobs/${id}?wait=20`, undefined, { token });
  expect(res.status).toBe(200);
  if (!["completed", "failed", "cancelled"].includes(res.body.status)) {
    const job = await jobsQueue.getJob(res.body.jobId);
    throw new Error(
      `job ${id} still '${res.body.status}' after 20 s; BullMQ says ${await jobsQueue.getJobState(res.body.jobId)} ` +
        `(attemptsMade ${job?.attemptsMade}, finishedOn ${job?.finishedOn}); view: ${JSON.stringify(res.body)}`,
    );
  }
  return res.body;
};

const jobRows = async () => {
  const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs`;
  return row?.n ?? -1;
};

const expectError = (res: HttpReply, status: number, code: string) => {
  if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${JSON.stringify(res.body)}`);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe("string");
};

describe("single jobs", () => {
  test("an echo job completes; the row, the view and a socket event agree", async () => {
    const ws = await connectWs(api.wsUrl, cluster.token);
    clients.push(ws);
    ws.send({ op: "subscribe", all: true });
    await ws.next((m) => m.type === "subscribed");

    const res = await create({ name: "echo", data: { x: 1 } });
    expect(res.status).toBe(201);
    expect(res.body.queueName).toBe("jobs");
    expect(res.body.scheduleId).toBeNull();
    expect(res.body.name).toBe("echo");
    expect(res.body.data).toEqual({ x: 1 });
    const id = res.body.id as string;
    expect(res.body.jobId).toBe(id);

    const done = await finished(id);
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({ data: { x: 1 }, children: {} });
    expect(done.attemptsMade).toBe(1);
    expect(done.error).toBeNull();
    for (const key of ["id", "jobId", "name", "queueName", "status", "data", "opts", "result", "error", "createdAt", "updatedAt"])
      expect(Object.keys(done)).toContain(key);

    const [row] = await cluster.database.sql<{ status: string; result: unknown }[]>`select status, result from jobs where id = ${id}`;
    expect(row?.status).toBe("completed");
    expect(row?.result).toEqual({ data: { x: 1 }, children: {} });

    const event = await ws.next((m) => m.type === "event" && m.event === "job.updated" && m.status === "completed" && m.jobId === id, 10_000);
    expect(event.flowId).toBeUndefined();
    expect(typeof event.seq).toBe("number");
  });

  test("a failed job is retried under a new BullMQ id and completes; a second retry is refused", async () => {
    const id = await created({ name: "fail", data: { message: "boom", times: 1 } });
    const failed = await finished(id);
    expect(failed.status).toBe("failed");
    expect(failed.error.message).toBe("boom");
    expect(failed.error.attemptsMade).toBe(1);
    expect(failed.jobId).toBe(id);

    const retried = await api.http("POST", `/v1/jobs/${id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.id).toBe(id);
    expect(["pending", "waiting", "active", "completed"]).toContain(retried.body.status);

    const done = await finished(id);
    expect(done.status).toBe("completed");
    expect(done.id).toBe(id);
    expect(done.jobId).toBe(`${id}-1`);
    expect(done.attemptsMade).toBe(2);
    expect(done.error).toBeNull();
    expect(done.result).toEqual({ failedTimes: 1 });

    const again = await api.http("POST", `/v1/jobs/${id}/retry`);
    expectError(again, 409, "nothing_to_retry");
  });

  test("cancel stops a running sleep and takes it out of BullMQ's active list; a second cancel is refused", async () => {
    const id = await created({ name: "sleep", data: { ms: 30_000 } });
    await waitFor(async () => (await api.http("GET", `/v1/jobs/${id}`)).body.status === "active", 15_000, "sleep active");
    expect(await jobsQueue.getJobState(id)).toBe("active");

    const started = Date.now();
    const cancelled = await api.http("POST", `/v1/jobs/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    await waitFor(async () => (await jobsQueue.getJobState(id)) !== "active", 2_000, "sleep to leave the active list");
    expect(Date.now() - started).toBeLessThan(2_500);

    const again = await api.http("POST", `/v1/jobs/${id}/cancel`);
    expectError(again, 409, "job_finished");
    // The worker's late failure report does not move a cancelled job.
    await Bun.sleep(300);
    const after = await api.http("GET", `/v1/jobs/${id}`);
    expect(after.body.status).toBe("cancelled");
    const [row] = await cluster.database.sql<{ status: string }[]>`select status from jobs where id = ${id}`;
    expect(row?.status).toBe("cancelled");
  });

  test("concurrent requests with one Idempotency-Key create one job and all answer with it", async () => {
    const key = `race-${Date.now()}`;
    const replies = await Promise.all(Array.from({ length: 8 }, () => create({ name: "echo", data: { raced: true } }, undefined, { "idempotency-key": key })));
    expect(replies.map((r) => r.status)).toEqual(Array(8).fill(201));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where idempotency_key = ${key}`;
    expect(row!.n).toBe(1);
    await finished(replies[0]!.body.id);
  });

  test("Idempotency-Key replays the first answer and refuses a different body", async () => {
    const key = `key-${Date.now()}`;
    const body = { name: "echo", data: { idem: 1 } };
    const first = await create(body, undefined, { "idempotency-key": key });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const second = await create(body, undefined, { "idempotency-key": key });
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where idempotency_key = ${key}`;
    expect(row?.n).toBe(1);

    const before = await jobRows();
    const other = await create({ name: "echo", data: { idem: 2 } }, undefined, { "idempotency-key": key });
    expectError(other, 409, "idempotency_key_reused");
    expect(await jobRows()).toBe(before);
    await finished(first.body.id);
    // After the job finished, a repeat still gets the first answer, not the job as it is now.
    const later = await create(body, undefined, { "idempotency-key": key });
    expect(later.status).toBe(201);
    expect(later.body).toEqual(first.body);
  });

  test("listing pages newest first and filters by status and name", async () => {
    const bob = await cluster.newUser("bob-list");
    const ids: string[] = [];
    for (const body of [
      { name: "echo", data: { n: 1 } },
      { name: "fail", data: { message: "no" } },
      { name: "echo", data: { n: 2 } },
      { name: "sleep", data: { ms: 10 } },
      { name: "echo", data: { n: 3 } },
    ])
      ids.push(await created(body, bob));
    for (const id of ids) await finished(id, bob);
    const newestFirst = [...ids].reverse();

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const path: string = `/v1/jobs?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page: HttpReply = await api.http("GET", path, undefined, { token: bob });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((j: { id: string }) => j.id));
      cursor = page.body.nextCursor;
      pages++;
      expect(pages).toBeLessThan(10);
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual(newestFirst);

    const completed = await api.http("GET", "/v1/jobs?status=completed", undefined, { token: bob });
    expect(completed.status).toBe(200);
    expect(completed.body.items.map((j: { id: string }) => j.id)).toEqual(newestFirst.filter((id) => id !== ids[1]));
    expect(completed.body.nextCursor).toBeNull();

    const failed = await api.http("GET", "/v1/jobs?status=failed", undefined, { token: bob });
    expect(failed.body.items.map((j: { id: string }) => j.id)).toEqual([ids[1]]);

    const echoes = await api.http("GET", "/v1/jobs?name=echo", undefined, { token: bob });
    expect(echoes.body.items.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[2], ids[0]]);
    for (const j of echoes.body.items) expect(j.name).toBe("echo");

    const both = await api.http("GET", "/v1/jobs?name=echo&status=failed", undefined, { token: bob });
    expect(both.body.items).toEqual([]);
    expect(both.body.nextCursor).toBeNull();
  });

  test("another user's job answers 404 like a missing one and is not listed", async () => {
    const id = await created({ name: "fail", data: { message: "mine" } });
    await finished(id);
    const mallory = await cluster.newUser("mallory-jobs");
    for (const [method, path] of [
      ["GET", `/v1/jobs/${id}`],
      ["POST", `/v1/jobs/${id}/cancel`],
      ["POST", `/v1/jobs/${id}/retry`],
    ] as const) {
      const res = await api.http(method, path, undefined, { token: mallory });
      expectError(res, 404, "not_found");
    }
    const list = await api.http("GET", "/v1/jobs?limit=100", undefined, { token: mallory });
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([]);
    // Still failed, untouched by the refused retry.
    const mine = await api.http("GET", `/v1/jobs/${id}`);
    expect(mine.body.status).toBe("failed");
    expect(mine.body.jobId).toBe(id);
  });

  test("bad input is refused with a code and writes nothing", async () => {
    const cases: { body?: unknown; raw?: string; status: number; code: string }[] = [
      { body: { name: "nope" }, status: 400, code: "unknown_handler" },
      { body: { name: "sleep" }, status: 400, code: "invalid_job_data" },
      { body: { name: "sleep", data: { ms: "soon" } }, status: 400, code: "invalid_job_data" },
      { body: { name: "echo", opts: { ignoreDependencyOnFailure: true } }, status: 400, code: "invalid_input" },
      { body: { name: "echo", extra: 1 }, status: 400, code: "invalid_input" },
      { body: { name: "echo", data: [1, 2] }, status: 400, code: "invalid_input" },
      { body: { name: "echo", data: "text" }, status: 400, code: "invalid_input" },
      { body: { data: {} }, status: 400, code: "invalid_input" },
      { raw: "{not json", status: 400, code: "invalid_json" },
      { body: { name: "echo", data: { big: "x".repeat(2 * 1024 * 1024) } }, status: 413, code: "payload_too_large" },
    ];
    for (const c of cases) {
      const before = await jobRows();
      const res = await api.http("POST", "/v1/jobs", c.body, { raw: c.raw });
      if (res.status !== c.status || res.body?.error?.code !== c.code)
        throw new Error(`${JSON.stringify(c.body ?? c.raw).slice(0, 120)}: expected ${c.status} ${c.code}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      expect(typeof res.body.error.message).toBe("string");
      expect(await jobRows()).toBe(before);
    }
  });
});
