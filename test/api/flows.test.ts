import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import { foldTallies } from "../../src/db/queries/metrics";
import { ADD_TIMEOUT_MS } from "../../src/services/enqueue";

// API in this process, one worker in a process of its own: the path users run.
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 1, tag: "flows" });
});
afterAll(async () => {
  await stack?.stop();
});

const finished = async (id: string, token?: string) => {
  const res = await stack.http("GET", `/v1/flows/${id}?wait=20`, undefined, { token });
  expect(res.status).toBe(200);
  return res.body;
};

describe("flows end to end", () => {
  test("a 3-level flow completes with each child's result in its parent's", async () => {
    const res = await stack.http("POST", "/v1/flows", {
      name: "three levels",
      root: {
        name: "echo",
        data: { level: 1 },
        children: [
          { name: "echo", data: { level: 2 }, children: [{ name: "echo", data: { level: 3 } }, { name: "sleep", data: { ms: 50 } }] },
          { name: "echo", data: { level: 2, b: true } },
        ],
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe("running");
    expect(res.body.jobCount).toBe(5);
    const flow = await finished(res.body.id);
    expect(flow.status).toBe("completed");
    expect(flow.finishedAt).not.toBeNull();
    const [mid, side] = flow.root.children;
    const [leaf, sleeper] = mid.children;
    expect(leaf.result).toEqual({ data: { level: 3 }, children: {} });
    expect(sleeper.result).toEqual({ slept: 50 });
    expect(mid.result).toEqual({ data: { level: 2 }, children: { [leaf.jobId]: leaf.result, [sleeper.jobId]: { slept: 50 } } });
    expect(flow.root.result).toEqual({
      data: { level: 1 },
      children: { [mid.jobId]: mid.result, [side.jobId]: side.result },
    });
    for (const job of [flow.root, mid, side, leaf, sleeper]) {
      expect(job.status).toBe("completed");
      expect(Object.keys(job).sort()).toEqual(
        ["attemptsMade", "children", "createdAt", "data", "error", "id", "jobId", "name", "opts", "queueName", "result", "status", "updatedAt"].sort(),
      );
    }
  });

  test("a failing child fails the flow, and retry runs only what failed", async () => {
    const res = await stack.http("POST", "/v1/flows", {
      name: "fails once",
      root: {
        name: "echo",
        children: [{ name: "fail", data: { message: "boom", times: 1 } }, { name: "echo", data: { ok: 1 } }],
      },
    });
    expect(res.status).toBe(201);
    const failed = await finished(res.body.id);
    expect(failed.status).toBe("failed");
    const [bad, good] = failed.root.children;
    expect(bad.status).toBe("failed");
    expect(bad.error.message).toBe("boom");
    expect(bad.error.attemptsMade).toBe(1);
    expect(typeof bad.error.stack).toBe("string");
    expect(failed.root.status).toBe("failed");
    // The parent's reason names the child by its job id, not by a Redis key.
    expect(failed.root.error.message).toBe(`child job ${bad.jobId} (queue flows) failed`);
    expect(good.status).toBe("completed");

    const retried = await stack.http("POST", `/v1/flows/${res.body.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe("running");
    const done = await finished(res.body.id);
    expect(done.status).toBe("completed");
    const [bad2, good2] = done.root.children;
    expect(bad2.status).toBe("completed");
    expect(bad2.jobId).not.toBe(bad.jobId);
    expect(bad2.attemptsMade).toBe(2);
    // The completed child was not run again: same BullMQ id, same result, and the root saw it.
    expect(good2.jobId).toBe(good.jobId);
    expect(good2.updatedAt).toBe(good.updatedAt);
    expect(done.root.result.children).toEqual({ [bad2.jobId]: { failedTimes: 1 }, [good2.jobId]: { data: { ok: 1 }, children: {} } });

    const again = await stack.http("POST", `/v1/flows/${res.body.id}/retry`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("nothing_to_retry");
  });

  test("a child with ignoreDependencyOnFailure does not fail its parent", async () => {
    const res = await stack.http("POST", "/v1/flows", {
      name: "tolerant",
      root: { name: "echo", children: [{ name: "fail", opts: { ignoreDependencyOnFailure: true } }, { name: "echo" }] },
    });
    const flow = await finished(res.body.id);
    expect(flow.status).toBe("completed");
    expect(flow.root.children[0].status).toBe("failed");
  });

  test("cancel stops a 30 s sleep within a second and marks every unfinished job", async () => {
    const res = await stack.http("POST", "/v1/flows", {
      name: "long",
      root: { name: "echo", children: [{ name: "sleep", data: { ms: 30_000 } }, { name: "sleep", data: { ms: 30_000 }, opts: { delay: 60_000 } }] },
    });
    const id = res.body.id;
    await waitFor(async () => (await stack.http("GET", `/v1/flows/${id}`)).body.root.children[0].status === "active", 10_000, "sleep active");
    const started = Date.now();
    const cancelled = await stack.http("POST", `/v1/flows/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    expect(cancelled.body.root.status).toBe("cancelled");
    expect(cancelled.body.root.children.map((c: { status: string }) => c.status)).toEqual(["cancelled", "cancelled"]);
    // The worker let go of the sleep: the job left BullMQ's active list.
    const activeJobId = cancelled.body.root.children[0].jobId;
    const { Queue } = await import("bullmq");
    const IORedis = (await import("ioredis")).default;
    const conn = new IORedis(stack.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const q = new Queue("flows", { connection: conn, prefix: stack.config.prefix });
    try {
      await waitFor(async () => {
        const state = await q.getJobState(activeJobId);
        return state !== "active";
      }, 1_000, "sleep to stop");
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      await q.close();
      conn.disconnect();
    }
    // Once the worker let go, nothing of the flow is left in Redis: not the root, which the
    // aborted child would otherwise fail there, nor the delayed child.
    const keys = [cancelled.body.root, ...cancelled.body.root.children].map((j: { jobId: string }) => `${stack.config.prefix}:flows:${j.jobId}`);
    const redis = new IORedis(stack.env.REDIS_URL!);
    try {
      await waitFor(async () => (await redis.exists(...keys)) === 0, 10_000, "the cancelled flow's jobs to leave Redis");
    } finally {
      redis.disconnect();
    }
    const again = await stack.http("POST", `/v1/flows/${id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("flow_finished");
    // A cancelled job stays cancelled even though its worker reported a failure afterwards.
    const after = await stack.http("GET", `/v1/flows/${id}`);
    expect(after.body.root.children[0].status).toBe("cancelled");
  });

  test("delete removes a finished flow and refuses a running one", async () => {
    const running = await stack.http("POST", "/v1/flows", { name: "busy", root: { name: "sleep", data: { ms: 20_000 } } });
    const refused = await stack.http("DELETE", `/v1/flows/${running.body.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("flow_running");
    await stack.http("POST", `/v1/flows/${running.body.id}/cancel`);

    const res = await stack.http("POST", "/v1/flows", { name: "short", root: { name: "echo" } });
    await finished(res.body.id);
    const del = await stack.http("DELETE", `/v1/flows/${res.body.id}`);
    expect(del.status).toBe(204);
    expect((await stack.http("GET", `/v1/flows/${res.body.id}`)).status).toBe(404);
    const [counted] = await stack.database.sql<{ count: number }[]>`select count(*)::int as count from flow_jobs where flow_id = ${res.body.id}`;
    expect(counted?.count).toBe(0);
  });

  test("a create whose write waits on a lock longer than the add's time limit still queues its jobs at once", async () => {
    // The Redis add is built during the write and timed from the commit, not from the request.
    const locker = await stack.database.sql.reserve();
    await locker.unsafe("begin");
    await locker.unsafe("lock table flow_jobs in exclusive mode");
    const started = Date.now();
    const creating = stack.http("POST", "/v1/flows", { name: "held up", root: { name: "echo", children: [{ name: "echo" }] } });
    await Bun.sleep(ADD_TIMEOUT_MS + 500);
    await locker.unsafe("commit");
    locker.release();
    const res = await creating;
    expect(res.status).toBe(201);
    expect(Date.now() - started).toBeGreaterThan(ADD_TIMEOUT_MS);
    // In Redis already: the answer says where the jobs are, not `pending`.
    expect(res.body.root.status).toBe("waiting-children");
    expect(res.body.root.children[0].status).toBe("waiting");
    expect((await finished(res.body.id)).status).toBe("completed");
  });

  test("deleting a user in SQL takes their flows and every job of them along, and nobody else's", async () => {
    const token = await stack.newUser("leaving");
    const theirs = await stack.http("POST", "/v1/flows", { name: "theirs", root: { name: "echo", children: [{ name: "echo" }] } }, { token });
    const mine = await stack.http("POST", "/v1/flows", { name: "mine", root: { name: "echo", children: [{ name: "echo" }] } });
    await finished(theirs.body.id, token);
    await finished(mine.body.id);
    const jobsOf = async (flowId: string) =>
      (await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where flow_id = ${flowId}`)[0]!.n;
    expect(await jobsOf(theirs.body.id)).toBe(2);

    await stack.database.sql`delete from users where name = 'leaving'`;
    expect(await jobsOf(theirs.body.id)).toBe(0);
    expect(await jobsOf(mine.body.id)).toBe(2);
    expect((await stack.http("GET", `/v1/flows/${mine.body.id}`)).status).toBe(200);
  });

  test("concurrent requests with one Idempotency-Key create one flow and all answer with it", async () => {
    const body = { name: "raced", root: { name: "echo", data: { n: 1 } } };
    const headers = { "idempotency-key": `race-${Date.now()}` };
    const replies = await Promise.all(Array.from({ length: 8 }, () => stack.http("POST", "/v1/flows", body, { headers })));
    expect(replies.map((r) => r.status)).toEqual(Array(8).fill(201));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    const [counted] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows where idempotency_key = ${headers["idempotency-key"]}`;
    expect(counted!.n).toBe(1);
  });

  test("creates that share a write: a raced Idempotency-Key among them costs the others nothing", async () => {
    // Concurrent small flows are written together (group commit); the keyed pair fails that shared
    // write on the unique index, which must then be retried flow by flow.
    const key = `shared-${Date.now()}`;
    const keyed = { name: "keyed", root: { name: "echo", data: { k: 1 } } };
    const bodies = Array.from({ length: 30 }, (_, i) => ({ name: `batch-${key}`, root: { name: "echo", data: { i } } }));
    const replies = await Promise.all([
      ...bodies.map((b) => stack.http("POST", "/v1/flows", b)),
      stack.http("POST", "/v1/flows", keyed, { headers: { "idempotency-key": key } }),
      stack.http("POST", "/v1/flows", keyed, { headers: { "idempotency-key": key } }),
    ]);
    expect(replies.map((r) => r.status)).toEqual(Array(32).fill(201));
    expect(replies[30]!.body.id).toBe(replies[31]!.body.id);
    const ids = replies.slice(0, 30).map((r) => r.body.id);
    expect(new Set(ids).size).toBe(30);
    const [counted] = await stack.database.sql<{ n: number; jobs: number }[]>`
      select count(*)::int as n, sum(job_count)::int as jobs from flows where name = ${`batch-${key}`}`;
    expect(counted).toEqual({ n: 30, jobs: 30 });
    const done = await Promise.all(ids.map((id) => finished(id)));
    expect(done.map((f) => f.status)).toEqual(Array(30).fill("completed"));
    expect(done.map((f) => f.root.data.i).sort((a, b) => a - b)).toEqual(bodies.map((_, i) => i));
  });

  test("Idempotency-Key returns the first answer and creates nothing more", async () => {
    const body = { name: "once", root: { name: "echo", data: { n: 1 } } };
    const headers = { "idempotency-key": "key-123" };
    const first = await stack.http("POST", "/v1/flows", body, { headers });
    const second = await stack.http("POST", "/v1/flows", body, { headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const [counted] = await stack.database.sql<{ count: number }[]>`select count(*)::int as count from flows where idempotency_key = 'key-123'`;
    expect(counted?.count).toBe(1);
    // Even after the flow finished, a repeat gets the first answer, not the flow as it is now.
    expect((await stack.http("GET", `/v1/flows/${first.body.id}?wait=20`)).body.status).toBe("completed");
    const later = await stack.http("POST", "/v1/flows", body, { headers });
    expect(later.status).toBe(201);
    expect(later.body).toEqual(first.body);
    const reused = await stack.http("POST", "/v1/flows", { ...body, name: "other" }, { headers });
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe("idempotency_key_reused");
    // Another user's identical key is another flow.
    const bob = await stack.newUser("bob-idem");
    const theirs = await stack.http("POST", "/v1/flows", body, { headers, token: bob });
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(first.body.id);
  });

  test("pages of flows, newest first, with a status filter", async () => {
    const token = await stack.newUser("pager");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await stack.http("POST", "/v1/flows", { name: `p${i}`, root: { name: "echo" } }, { token });
      ids.push(r.body.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : "";
      const page = await stack.http("GET", `/v1/flows?limit=2${q}`, undefined, { token });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((f: { id: string }) => f.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    for (const id of ids) await finished(id, token);
    const completed = await stack.http("GET", "/v1/flows?status=completed&limit=100", undefined, { token });
    expect(completed.body.items.map((f: { id: string }) => f.id).sort()).toEqual([...ids].sort());
    const running = await stack.http("GET", "/v1/flows?status=running", undefined, { token });
    expect(running.body.items).toEqual([]);
    const bad = await stack.http("GET", "/v1/flows?cursor=nonsense", undefined, { token });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_cursor");
  });

  test("another user's flow is 404 on every route and absent from lists", async () => {
    const mine = await stack.http("POST", "/v1/flows", { name: "private", root: { name: "echo" } });
    const eve = await stack.newUser("eve");
    for (const [method, path] of [
      ["GET", `/v1/flows/${mine.body.id}`],
      ["POST", `/v1/flows/${mine.body.id}/cancel`],
      ["POST", `/v1/flows/${mine.body.id}/retry`],
      ["DELETE", `/v1/flows/${mine.body.id}`],
    ] as const) {
      const res = await stack.http(method, path, undefined, { token: eve });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    }
    const list = await stack.http("GET", "/v1/flows?limit=100", undefined, { token: eve });
    expect(list.body.items).toEqual([]);
  });
});

describe("metrics", () => {
  test("GET /metrics reports jobs by status from Postgres and queue depths from Redis, in Prometheus text", async () => {
    const res = await fetch(`${stack.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain("# TYPE flowd_jobs gauge");
    expect(text).toMatch(/flowd_jobs\{table="flow_jobs",queue="flows",status="completed"\} [1-9]\d*/);
    expect(text).toMatch(/flowd_queue_jobs\{queue="flows",status="completed"\} \d+/);
    expect(text).toMatch(/flowd_listener_last_seq [1-9]\d*/);
    expect(text).toContain("flowd_socket_clients 0");
    expect(text).toContain("# TYPE flowd_webhook_attempts_total counter");
    expect(text).toMatch(/flowd_queue_jobs\{queue="webhooks",status="waiting"\} \d+/);
  });

  test("the job counts in /metrics, kept by triggers, equal a full count of the tables", async () => {
    const scraped = async () => {
      const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
      const lines = [...text.matchAll(/^flowd_jobs\{table="(\w+)",queue="([\w-]+)",status="([\w-]+)"\} (\d+)$/gm)];
      // One series per key, never two (a duplicate would make Prometheus keep either).
      expect(new Set(lines.map((m) => `${m[1]} ${m[2]} ${m[3]}`)).size).toBe(lines.length);
      // A count of 0 is a series a full count cannot show: compare the others.
      return lines.filter((m) => m[4] !== "0").map((m) => `${m[1]} ${m[2]} ${m[3]} ${m[4]}`).sort();
    };
    const counted = async () =>
      (
        await stack.database.sql<{ line: string }[]>`
          select tbl || ' ' || queue_name || ' ' || status || ' ' || n as line from (
            select 'flow_jobs' as tbl, queue_name, status, count(*) as n from flow_jobs group by 2, 3
            union all select 'jobs', queue_name, status, count(*) from jobs group by 2, 3) c`
      )
        .map((r) => r.line)
        .sort();
    // Flows were created, run, cancelled and deleted above; workers may still be writing, so compare until both agree.
    await waitFor(async () => {
      const [a, b] = await Promise.all([scraped(), counted()]);
      return a.length > 0 && JSON.stringify(a) === JSON.stringify(b);
    }, 10_000, "the scraped counts to equal a full count");
    // The background fold leaves one row per key, however many deltas were appended; a key at zero
    // stays, so its series reads 0.
    const key = crypto.randomUUID();
    const rowsOf = () => stack.database.sql<{ n: string }[]>`select n from job_tallies where queue = ${key}`;
    await stack.database.sql`insert into job_tallies values ('jobs', ${key}, 'completed', 2), ('jobs', ${key}, 'completed', 3)`;
    await foldTallies(stack.database.db);
    expect((await rowsOf()).map((r) => Number(r.n))).toEqual([5]);
    await stack.database.sql`insert into job_tallies values ('jobs', ${key}, 'completed', -5)`;
    await foldTallies(stack.database.db);
    expect((await rowsOf()).map((r) => Number(r.n))).toEqual([0]);
  });
});
