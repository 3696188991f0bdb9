import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { insertJob } from "../../src/db/queries/jobs";
import { insertFlow } from "../../src/db/queries/flows";
import { newId } from "../../src/ids";
import { createToken } from "../../src/services/tokens";
import { createHub } from "../../src/events/hub";
import { startListener } from "../../src/events/listener";
import { createLogger } from "../../src/log";
import { newJobRow } from "../../src/services/jobs";
import { createWaiters } from "../../src/services/waiters";
import { longPollTarget, type LoggedEvent } from "../../src/event-types";
import { createTestDatabase } from "../helpers/db";
import { waitFor } from "../helpers/wait";

// The API's event listener on a real database: its triggers ring the doorbell as they do in use.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

async function newJob() {
  const row = newJobRow("u1", { name: "echo" }, { status: "waiting" });
  await insertJob(db.database.db, row);
  return row.id;
}
const setStatus = (id: string, status: string) => db.database.db.execute(sql`update jobs set status = ${status} where id = ${id}`);
const maxSeq = async () => Number((await db.database.db.execute<{ m: string }>(sql`select max(seq)::text as m from events`))[0]!.m);

function setUp() {
  const hub = createHub();
  const waiters = createWaiters(60_000);
  const seen: LoggedEvent[] = [];
  // As the API wires them: a job's own event ends its long-polls.
  hub.observe((e) => {
    seen.push(e);
    const target = longPollTarget(e);
    if (target) waiters.notify(target);
  });
  const listener = startListener({ db: db.database.db, sql: db.database.sql, log: createLogger("silent"), hub, longPolls: waiters.longPolls, pollMs: 60_000 });
  return { hub, waiters, seen, listener };
}

test("with no socket subscribed and no long-poll waiting, a doorbell moves the listener on without reading the log", async () => {
  const { hub, seen, listener } = setUp();
  await listener.ready;
  await waitFor(() => listener.stats.reads >= 1, 5_000, "the first catch-up read");
  const reads = listener.stats.reads;
  const ids = await Promise.all(Array.from({ length: 5 }, newJob));
  for (const id of ids) await setStatus(id, "active");
  const top = await maxSeq();
  await waitFor(() => hub.lastSeq >= top, 5_000, "the hub to pass the new events");
  expect(listener.stats.lastSeq).toBe(top);
  expect(listener.stats.notifications).toBeGreaterThanOrEqual(1);
  // Five doorbells, no reads: nobody here wanted the events.
  expect(listener.stats.reads).toBe(reads);
  expect(seen).toHaveLength(0);
  await listener.stop();
});

test("a long-poll in progress makes the listener read its job's events, and its wait ends on them, not on the fallback", async () => {
  const { waiters, seen, listener } = setUp();
  await listener.ready;
  const id = await newJob();
  const started = Date.now();
  let wokeAfterMs = -1;
  let firstRead!: () => void;
  const firstReadDone = new Promise<void>((resolve) => (firstRead = resolve));
  const jobStatus = async () => {
    const status = (await db.database.db.execute<{ status: string }>(sql`select status from jobs where id = ${id}`))[0]?.status;
    firstRead();
    return status;
  };
  const poll = waiters.until(id, 60, jobStatus, (status) => status === "completed").then(() => {
    wokeAfterMs = Date.now() - started;
  });
  expect(waiters.longPolls.waiting).toBe(1);
  const reads = listener.stats.reads;
  // The change lands after the poll's own first read, so only its event can end the wait.
  await firstReadDone;
  await setStatus(id, "completed");
  await poll;
  // Woken by its event (the fallback here is 60 s), which the listener read because a poll waited.
  expect(wokeAfterMs).toBeGreaterThanOrEqual(0);
  expect(wokeAfterMs).toBeLessThan(10_000);
  expect(seen.some((e) => e.jobId === id && e.status === "completed")).toBe(true);
  expect(listener.stats.reads).toBeGreaterThan(reads);
  expect(waiters.longPolls.waiting).toBe(0);
  await listener.stop();
});

test("a socket subscribing after skipped events reads them from the log up to where the hub stands: none is missed", async () => {
  const { hub, listener } = setUp();
  await listener.ready;
  const ids = await Promise.all(Array.from({ length: 3 }, newJob));
  for (const id of ids) await setStatus(id, "completed");
  const top = await maxSeq();
  await waitFor(() => hub.lastSeq >= top, 5_000, "the hub to pass the skipped events");
  // What a subscribing socket replays: the log up to the hub's seq holds every skipped event.
  const replay = await db.database.db.execute<{ job_id: string }>(sql`select job_id from events where seq <= ${hub.lastSeq} and status = 'completed'`);
  expect(ids.every((id) => replay.some((r) => r.job_id === id))).toBe(true);
  // And with a subscriber, the next events are read and published.
  hub.watchSubscriptions(() => true);
  hub.joined();
  const published: LoggedEvent[] = [];
  hub.attach({ publish: () => {}, subscriberCount: () => 0 });
  hub.observe((e) => published.push(e));
  const late = await newJob();
  await setStatus(late, "active");
  await waitFor(() => published.some((e) => e.jobId === late), 5_000, "the next event published");
  await listener.stop();
});

test("with only a long-poll waiting, doorbells for flow jobs' updates are passed without a read; the flow's own event is read and ends the wait", async () => {
  const { waiters, seen, listener } = setUp();
  await listener.ready;
  const { userId } = await createToken(db.database.db, "flow-owner");
  const flowId = newId();
  const [rootId, childId] = [newId(), newId()];
  const job = (id: string, parentId: string | null) => ({
    id, jobId: id, userId, flowId, parentId, name: "echo", queueName: "flows", shard: null, data: {}, opts: {},
    status: parentId ? "waiting" : "waiting-children", children: parentId ? [] : [childId], depth: parentId ? 1 : 0,
  });
  await insertFlow(db.database.db, { id: flowId, userId, name: "f", status: "running", rootId, jobCount: 2 }, [job(rootId, null), job(childId, rootId)]);
  let answeredAfterMs = -1;
  const started = Date.now();
  // As getFlow waits: the flow is read again after each wake until it is no longer running.
  const flowStatus = async () => (await db.database.db.execute<{ status: string }>(sql`select status from flows where id = ${flowId}`))[0]?.status;
  const poll = waiters.until(flowId, 60, flowStatus, (status) => status !== "running").then(() => {
    answeredAfterMs = Date.now() - started;
  });
  await waitFor(async () => hubPassed(listener, await maxSeq()), 5_000, "the flow.created event passed");
  const reads = listener.stats.reads;
  const flowJob = (id: string, status: string) => db.database.db.execute(sql`update flow_jobs set status = ${status} where id = ${id}`);
  await flowJob(childId, "active");
  await flowJob(childId, "completed");
  await flowJob(rootId, "active");
  const jobEventsTop = await maxSeq();
  await waitFor(() => hubPassed(listener, jobEventsTop), 5_000, "the listener to pass the job updates");
  expect(listener.stats.reads).toBe(reads);
  expect(seen.filter((e) => e.flowId === flowId && e.type === "job.updated")).toHaveLength(0);
  // The root's completion finishes the flow: its flow.completed rings a bare doorbell, which is read.
  await flowJob(rootId, "completed");
  await poll;
  expect(answeredAfterMs).toBeLessThan(10_000);
  expect(listener.stats.reads).toBeGreaterThan(reads);
  expect(seen.some((e) => e.flowId === flowId && e.type === "flow.completed")).toBe(true);
  await listener.stop();
});

const hubPassed = (listener: { stats: { lastSeq: number } }, seq: number) => listener.stats.lastSeq >= seq;
