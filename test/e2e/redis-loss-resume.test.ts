import { describe, expect, test } from "bun:test";
import IORedis from "ioredis";
import { useTaskStack } from "../helpers/task-stack";
import { deletePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

/**
 * Redis loses every key of the deployment while jobs wait out a delay or a backoff, or while an
 * http task is parked on its callback (the binary in CI: an API and a worker process). The
 * reconciler adds each job again as it stood: what is left of its delay, the attempts its run
 * made still counted, a parked task still parked on the callback URL its service holds.
 */
const stack = useTaskStack("loss", { FLOWD_RECONCILE_INTERVAL_MS: "1000" }, { FLOWD_RECONCILE_INTERVAL_MS: "1000" });
const { answers, http, job, createTask, settled, callback } = stack;

type Timings = { status: string; created: number; ready: number | null; started: number | null; job_id: string; attempts_made: number };
/** A row's status, times (epoch ms) and ids, read together from Postgres as the recorder wrote them. */
async function timings(table: "jobs" | "flow_jobs", id: string): Promise<Timings> {
  const [row] = await stack.cluster.database.sql<Timings[]>`
    select (extract(epoch from created_at) * 1000)::float8 as created, (extract(epoch from ready_at) * 1000)::float8 as ready,
      (extract(epoch from started_at) * 1000)::float8 as started, status, job_id, attempts_made
    from ${stack.cluster.database.sql(table)} where id = ${id}`;
  return row!;
}

/** Deletes the deployment's keys at `atMs` (epoch): the loss is placed in the job's wait on purpose. */
async function loseRedisAt(atMs: number): Promise<number> {
  await Bun.sleep(Math.max(0, atMs - Date.now()));
  await deletePrefix(stack.cluster.prefix);
  return Date.now();
}

/** Whether BullMQ holds the job delayed: how a parked http task waits. */
async function inDelayedSet(jobId: string, queue = "jobs"): Promise<boolean> {
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    return (await redis.zscore(`${stack.cluster.prefix}:${queue}:delayed`, jobId)) !== null;
  } finally {
    redis.disconnect();
  }
}

// It would start this long after its due time at most (a worker's pick-up, a loaded machine).
const LATE_MS = 1_500;

describe("a delayed job whose keys are lost keeps its due time", () => {
  test("a single job and a flow's child, 6 s delays, keys lost at 3 s: each starts when it was due, not 6 s after the loss", async () => {
    const single = await http("POST", "/v1/jobs", { name: "echo", data: { n: 1 }, opts: { delay: 6_000 } });
    expect(single.status).toBe(201);
    const flow = await http("POST", "/v1/flows", {
      name: "delayed-child",
      root: { name: "echo", data: { root: true }, children: [{ name: "echo", data: { child: true }, opts: { delay: 6_000 } }] },
    });
    expect(flow.status).toBe(201);
    const childId = flow.body.root.children[0].id as string;
    const created = (await timings("jobs", single.body.id)).created;
    const lostAt = await loseRedisAt(created + 3_000);

    const done = await http("GET", `/v1/jobs/${single.body.id}?wait=20`);
    expect(done.body.status).toBe("completed");
    await waitFor(async () => (await http("GET", `/v1/flows/${flow.body.id}?wait=5`)).body.status === "completed", 20_000, "the flow completed");
    for (const [table, id] of [["jobs", single.body.id], ["flow_jobs", childId]] as const) {
      const t = await timings(table, id);
      const due = t.created + 6_000;
      console.log(`${table} job due ${due - lostAt} ms after the loss started ${t.started! - due} ms after its due time`);
      expect(t.started! - due).toBeGreaterThan(-100);
      expect(t.started! - due).toBeLessThan(LATE_MS);
      // Re-added, not run twice: its one attempt counted once.
      expect(t.attempts_made).toBe(1);
    }
  }, 60_000);

  test("a job in its retry backoff keeps what is left of it, and opts.attempts still bounds its attempts", async () => {
    const created = await http("POST", "/v1/jobs", {
      name: "fail",
      data: { message: "always" },
      opts: { attempts: 2, backoff: { type: "fixed", delay: 6_000 } },
    });
    expect(created.status).toBe(201);
    // The first attempt failed; the row holds when its backoff ends (BullMQ's `delayed` entry).
    const backoff = await waitFor(async () => {
      const t = await timings("jobs", created.body.id);
      return t.attempts_made === 1 && t.status === "delayed" && t.ready !== null ? t : null;
    }, 15_000, "the first attempt failed and the backoff began");
    const due = backoff.ready!;
    expect(due - backoff.started!).toBeGreaterThanOrEqual(6_000);
    const lostAt = await loseRedisAt(due - 3_000);

    const done = await settled(created.body.id, 20_000);
    const t = await timings("jobs", created.body.id);
    console.log(`retry due ${due - lostAt} ms after the loss started ${t.started! - due} ms after its due time`);
    expect(t.started! - due).toBeGreaterThan(-100);
    expect(t.started! - due).toBeLessThan(LATE_MS);
    // Two attempts in all, as opts.attempts says: the re-add granted none anew.
    expect(done.status).toBe("failed");
    expect(done.attemptsMade).toBe(2);
    expect(done.error.attemptsMade).toBe(2);
  }, 60_000);

  test("an exponential backoff goes on doubling from where it was after the loss", async () => {
    const created = await http("POST", "/v1/jobs", { name: "fail", data: {}, opts: { attempts: 4, backoff: { type: "exponential", delay: 1_000 } } });
    const inBackoff = (attempts: number) =>
      waitFor(async () => {
        const t = await timings("jobs", created.body.id);
        return t.attempts_made === attempts && t.status === "delayed" ? t : null;
      }, 15_000, `in the backoff after attempt ${attempts}`);
    const second = await inBackoff(2);
    await deletePrefix(stack.cluster.prefix);
    const done = await settled(created.body.id, 25_000);
    expect(done.status).toBe("failed");
    expect(done.attemptsMade).toBe(4);
    // The third attempt started when the second backoff ended (second.ready), and the fourth 4 s
    // later (1 s, 2 s, 4 s), not after BullMQ's first step (1 s) again. Read from the last start:
    // the recorder may fold the third attempt's entries into the fourth's after a lost stream.
    const fourthStart = (await timings("jobs", created.body.id)).started!;
    console.log(`the backoff after the loss was ${fourthStart - second.ready!} ms (with the third attempt's run)`);
    expect(fourthStart - second.ready!).toBeGreaterThan(3_900);
  }, 60_000);

  test("a job whose handler counts attempts sees the attempts made before the loss", async () => {
    const created = await http("POST", "/v1/jobs", { name: "fail", data: { times: 1 }, opts: { attempts: 3, backoff: { type: "fixed", delay: 4_000 } } });
    await waitFor(async () => (await job(created.body.id)).status === "delayed", 15_000, "in its backoff");
    await deletePrefix(stack.cluster.prefix);
    const done = await settled(created.body.id, 20_000);
    // The second attempt is the handler's second (times: 1 lets it pass), so it completes.
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({ failedTimes: 1 });
    expect(done.attemptsMade).toBe(2);
  }, 60_000);
});

describe("a parked http task whose keys are lost stays parked on its callback", () => {
  /** Creates a task its service parks (202), waits until it is parked, then loses Redis and waits until the re-added job parked again. */
  async function parkThenLose(path: string) {
    const task = await createTask(path, {}, { attempts: 2 });
    await waitFor(async () => (await job(task.id)).callbackUntil !== undefined, 15_000, "parked");
    const [call] = stack.receiver.callsTo(path);
    const url = call!.headers["flowd-callback-url"]!;
    await deletePrefix(stack.cluster.prefix);
    const resumed = await waitFor(async () => {
      const t = await timings("jobs", task.id);
      return t.job_id !== task.jobId && (await inDelayedSet(t.job_id)) ? t : null;
    }, 20_000, "the reconciler added the task again and its worker parked it again");
    return { task, url, resumed };
  }

  test("no second call; the original callback URL completes it with the result; one attempt", async () => {
    answers.set("/parked-ok", () => ({ status: 202 }));
    const { task, url } = await parkThenLose("/parked-ok");
    const view = await job(task.id);
    expect(view.status).toBe("active");
    expect(view.attemptsMade).toBe(1);
    expect(stack.receiver.callsTo("/parked-ok")).toHaveLength(1);

    const res = await callback(url, "complete", { result: { shipped: true } });
    expect(res.status).toBe(200);
    const done = await settled(task.id);
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({ shipped: true });
    expect(done.attemptsMade).toBe(1);
    expect(stack.receiver.callsTo("/parked-ok")).toHaveLength(1);
    // The URL answered once; a second use says so truly.
    expect((await callback(url, "complete", { result: 2 })).body.error.code).toBe("callback_used");
  }, 60_000);

  test("the original URL fails it: the retry is its second and last attempt (opts.attempts: 2)", async () => {
    answers.set("/parked-fail", (n) => (n === 1 ? { status: 202 } : { status: 500, body: { down: true } }));
    const { task, url } = await parkThenLose("/parked-fail");
    expect(stack.receiver.callsTo("/parked-fail")).toHaveLength(1);

    const res = await callback(url, "fail", { message: "out of stock" });
    expect(res.status).toBe(200);
    const done = await settled(task.id);
    expect(done.status).toBe("failed");
    expect(done.attemptsMade).toBe(2);
    expect(done.error.attemptsMade).toBe(2);
    const calls = stack.receiver.callsTo("/parked-fail");
    expect(calls).toHaveLength(2);
    expect(calls[1]!.headers["flowd-attempt"]).toBe("2");
  }, 60_000);

  test("a flow's parked child: the flow is rebuilt, the child stays parked on its URL, and completing it completes the flow", async () => {
    answers.set("/parked-child", () => ({ status: 202 }));
    const created = await http("POST", "/v1/flows", {
      name: "parked-child",
      root: { name: "echo", children: [{ name: "http", data: { url: stack.receiver.url("/parked-child"), method: "POST" }, opts: { attempts: 2 } }] },
    });
    expect(created.status).toBe(201);
    const child = created.body.root.children[0] as { id: string; jobId: string };
    const childView = async () => (await http("GET", `/v1/flows/${created.body.id}`)).body.root.children[0];
    await waitFor(async () => (await childView()).callbackUntil !== undefined, 15_000, "the child parked");
    const url = stack.receiver.callsTo("/parked-child")[0]!.headers["flowd-callback-url"]!;
    await deletePrefix(stack.cluster.prefix);
    await waitFor(async () => {
      const t = await timings("flow_jobs", child.id);
      return t.job_id !== child.jobId && (await inDelayedSet(t.job_id, "flows")) ? t : null;
    }, 20_000, "the flow rebuilt and its child parked again");
    expect(stack.receiver.callsTo("/parked-child")).toHaveLength(1);
    expect((await callback(url, "complete", { result: { done: 1 } })).status).toBe(200);
    const flow = await waitFor(async () => {
      const f = (await http("GET", `/v1/flows/${created.body.id}?wait=5`)).body;
      return f.status === "completed" && f;
    }, 20_000, "the flow completed");
    const [c] = flow.root.children;
    expect(c.result).toEqual({ done: 1 });
    expect(c.attemptsMade).toBe(1);
    expect(flow.root.result.children[c.jobId]).toEqual({ done: 1 });
    expect(stack.receiver.callsTo("/parked-child")).toHaveLength(1);
  }, 60_000);
});
