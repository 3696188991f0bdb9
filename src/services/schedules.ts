import { createHash } from "node:crypto";
import { CronExpressionParser } from "cron-parser";
import type { Job } from "bullmq";
import { findJobById, insertJobOnce } from "../db/queries/jobs";
import {
  allActiveSchedules,
  deleteSchedule as deleteScheduleRow,
  findSchedule,
  findScheduleById,
  insertSchedule,
  listSchedules,
  recordTick,
  type ScheduleRow,
} from "../db/queries/schedules";
import { InvalidInput, NotFound } from "../errors";
import { newId } from "../ids";
import { isHandlerName } from "../handlers/catalog";
import { withHandlerDefaults, type JobOpts } from "../job-opts";
import type { Producer } from "../queues";
import type { Shard } from "../shards";
import type { ServiceDeps, User } from "./deps";
import { keysetPage } from "./cursor";
import { ADD_TIMEOUT_MS } from "./enqueue";
import { withTimeout } from "../timeout";
import { checkJob, refuseDebounce } from "./flow-spec";
import { enqueueJob, JOBS_QUEUE, newJobRow, releaseLimited, type JobInput } from "./jobs";
import { checkScheduleRun, fireRun, firingRegistry, missedFirings, scheduledAt, type FiringDeps, type ScheduleRun } from "./schedule-runs";

/** The queue holding BullMQ's job schedulers; each tick there becomes a tracked job in `jobs`. */
export const SCHEDULES_QUEUE = "schedules";

export interface ScheduleInput {
  name: string;
  pattern?: string;
  every?: number;
  tz?: string;
  /** Exactly one: a single job per firing, or a run of a definition. */
  job?: JobInput;
  run?: ScheduleRun;
  catchUp?: boolean;
}

export interface ScheduleView {
  id: string;
  name: string;
  pattern: string | null;
  every: number | null;
  tz: string | null;
  job?: { name: string; data: Record<string, unknown>; opts: Record<string, unknown> };
  run?: { definition: string; version: number | null; input: unknown };
  catchUp: boolean;
  paused: boolean;
  lastRunAt: string | null;
  nextRunAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export const scheduleView = (r: ScheduleRow, next?: Date | null): ScheduleView => ({
  id: r.id,
  name: r.name,
  pattern: r.pattern,
  every: r.every,
  tz: r.tz,
  ...(r.runDefinition !== null
    ? { run: { definition: r.runDefinition, version: r.runVersion, input: r.runInput ?? {} } }
    : { job: { name: r.jobName ?? "", data: r.jobData ?? {}, opts: r.jobOpts ?? {} } }),
  catchUp: r.catchUp,
  paused: r.paused,
  lastRunAt: iso(r.lastRunAt),
  nextRunAt: iso(next === undefined ? r.nextRunAt : next),
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

/** Refuses what BullMQ would accept and then never run: a bad cron, an unknown zone, both or neither timing. */
export function checkTiming(input: Pick<ScheduleInput, "pattern" | "every" | "tz">): Date {
  const refuse = (path: string, message: string) => new InvalidInput(message, [{ path, message }], "invalid_schedule");
  if ((input.pattern === undefined) === (input.every === undefined))
    throw refuse("/", "A schedule takes exactly one of 'pattern' (a cron expression) or 'every' (milliseconds).");
  if (input.tz !== undefined) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: input.tz });
    } catch {
      throw refuse("/tz", `Unknown time zone '${input.tz}'; use an IANA name such as 'Europe/Paris' or 'UTC'.`);
    }
  }
  if (input.every !== undefined) {
    if (input.tz !== undefined) throw refuse("/tz", "'tz' applies to 'pattern' only.");
    return new Date(Date.now() + input.every);
  }
  const fields = input.pattern!.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6)
    throw refuse("/pattern", `A cron expression has 5 fields (minute to weekday) or 6 (seconds first); '${input.pattern}' has ${fields}.`);
  try {
    return CronExpressionParser.parse(input.pattern!, { tz: input.tz, strict: false }).next().toDate();
  } catch (err) {
    throw refuse("/pattern", `Invalid cron expression '${input.pattern}': ${(err as Error).message}.`);
  }
}

/** Puts the schedule's BullMQ job scheduler into Redis (idempotent); returns its next run. */
export async function registerSchedule(producer: Producer, row: ScheduleRow): Promise<Date | null> {
  const queue = producer.at(row.shard).queue(SCHEDULES_QUEUE);
  const repeat = row.every !== null ? { every: row.every } : { pattern: row.pattern!, ...(row.tz ? { tz: row.tz } : {}) };
  const job = await withTimeout(
    queue.upsertJobScheduler(row.id, repeat, {
      name: "tick",
      data: { scheduleId: row.id },
      opts: { removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
    }),
    ADD_TIMEOUT_MS,
    "registering a schedule",
  );
  const next = job ? (job.timestamp ?? 0) + (job.opts.delay ?? 0) : 0;
  return next > 0 ? new Date(next) : null;
}

export async function createSchedule(deps: ServiceDeps, user: User, body: ScheduleInput): Promise<ScheduleView> {
  const nextByParser = checkTiming(body);
  if ((body.job === undefined) === (body.run === undefined))
    throw new InvalidInput("A schedule takes exactly one of 'job' (a single job per firing) or 'run' (a definition's run).", [{ path: "/job", message: "send job or run, not both" }]);
  if (body.run) await checkScheduleRun(deps, user, body.run);
  if (body.job?.queue !== undefined && body.job.queue !== JOBS_QUEUE)
    throw new InvalidInput(`A schedule's runs go to the '${JOBS_QUEUE}' queue; leave out /job/queue.`, [{ path: "/job/queue", message: "must be 'jobs'" }], "unknown_queue");
  if (body.job) {
    refuseDebounce(body.job.opts, "/job", "a schedule's job");
    checkJob(body.job, "/job", deps.registry);
  }
  const now = new Date();
  const id = newId();
  const row: ScheduleRow = {
    id,
    userId: user.userId,
    name: body.name,
    pattern: body.pattern ?? null,
    every: body.every ?? null,
    tz: body.tz ?? null,
    jobName: body.job?.name ?? null,
    jobData: body.job ? (body.job.data ?? {}) : null,
    jobOpts: body.job ? ((body.job.opts ?? {}) as Record<string, unknown>) : null,
    runDefinition: body.run?.definition ?? null,
    runVersion: body.run?.version ?? null,
    runInput: body.run ? (body.run.input ?? {}) : null,
    catchUp: body.catchUp ?? false,
    paused: false,
    shard: deps.producer.pick(id),
    lastRunAt: null,
    nextRunAt: nextByParser,
    createdAt: now,
    updatedAt: now,
  };
  await insertSchedule(deps.db, row);
  // If Redis refuses, the row is the promise: the worker's schedule check registers it later.
  const next = await registerSchedule(deps.producer, row).catch((err) => {
    deps.log.warn("schedule stored but not yet registered in Redis", { scheduleId: row.id, err: String(err) });
    return undefined;
  });
  return scheduleView(row, next);
}

/** The schedule with its next run as Redis has it (the stored estimate when Redis cannot say). */
export async function getSchedule(deps: ServiceDeps, user: User, id: string): Promise<ScheduleView> {
  const row = await findSchedule(deps.db, user.userId, id);
  if (!row) throw new NotFound("schedule", id);
  const live = await withTimeout(deps.producer.at(row.shard).queue(SCHEDULES_QUEUE).getJobScheduler(id), 1_000, "reading a schedule").catch(
    () => undefined,
  );
  return scheduleView(row, live?.next ? new Date(live.next) : undefined);
}

export function listUserSchedules(deps: ServiceDeps, user: User, q: { limit?: number; cursor?: string }) {
  return keysetPage(q, (limit, before) => listSchedules(deps.db, user.userId, { limit, before }), (r) => scheduleView(r));
}

/** Stops new ticks; the jobs earlier ticks created stay. A tick already due finds no row and stops itself. */
export async function deleteSchedule(deps: ServiceDeps, user: User, id: string): Promise<void> {
  const gone = await deleteScheduleRow(deps.db, user.userId, id);
  if (!gone) throw new NotFound("schedule", id);
  await withTimeout(deps.producer.at(gone.shard).queue(SCHEDULES_QUEUE).removeJobScheduler(id), ADD_TIMEOUT_MS, "removing a schedule").catch((err) =>
    deps.log.warn("schedule deleted; its Redis scheduler will stop at its next tick", { scheduleId: id, err: String(err) }),
  );
}

/** A row id derived from the tick's BullMQ id: the same tick, seen twice, is the same job. */
export const tickJobId = (tickBullId: string) =>
  "c" + BigInt("0x" + createHash("sha256").update(tickBullId).digest("hex")).toString(36).padStart(24, "0").slice(0, 24);

/**
 * One tick of a schedule: a tracked job in `jobs` (or a definition's run), then into Redis. Two
 * workers, a retry or a restart seeing the same tick create one row (its id comes from the tick)
 * and one BullMQ job. `shard` is where the tick came from; the job it creates goes where its own
 * id says. With `catchUp`, the firings missed while nothing ran (see missedFirings) follow it.
 */
export async function runTick(deps: FiringDeps, tick: Job, shard: Shard): Promise<{ jobId: string } | { flowIds: string[] } | { stopped: string }> {
  const scheduleId = String((tick.data as { scheduleId?: string })?.scheduleId ?? "");
  const schedule = await findScheduleById(deps.db, scheduleId);
  if (!schedule) {
    await deps.producer.at(shard).queue(SCHEDULES_QUEUE).removeJobScheduler(scheduleId);
    return { stopped: scheduleId };
  }
  const due = scheduledAt(tick);
  const times = [due, ...(schedule.catchUp && due !== null ? missedFirings(schedule, due, Date.now()) : [])];
  const started: (string | null)[] = [];
  for (const at of times) {
    // A missed firing gets the id BullMQ would have given its tick: seen again (or fired after all), it is the same job or run.
    const tickId = at === due ? (tick.id ?? `${scheduleId}:${tick.timestamp}`) : `repeat:${scheduleId}:${at}`;
    started.push(schedule.runDefinition !== null ? await fireRun(deps, schedule, tickId) : await fireJob(deps, schedule, tickId));
  }
  const live = await deps.producer.at(shard).queue(SCHEDULES_QUEUE).getJobScheduler(scheduleId).catch(() => undefined);
  await recordTick(deps.db, scheduleId, new Date(Math.max(tick.timestamp, times.at(-1) ?? 0)), live?.next ? new Date(live.next) : null);
  return schedule.runDefinition !== null ? { flowIds: started.filter((id) => id !== null) } : { jobId: started[0]! };
}

async function fireJob(deps: FiringDeps, schedule: ScheduleRow, tickId: string): Promise<string> {
  const id = tickJobId(tickId);
  const name = schedule.jobName ?? "";
  const own = (schedule.jobOpts ?? {}) as JobOpts;
  // Its handler module's defaults as they are at this firing (built-ins declare none: no read for them).
  const opts = isHandlerName(name) ? own : withHandlerDefaults((await firingRegistry(deps)).defaultsOf?.(JOBS_QUEUE, name), own);
  const row = newJobRow(
    schedule.userId,
    { name, data: schedule.jobData ?? {}, opts },
    { id, jobId: id, scheduleId: schedule.id },
    deps.producer,
  );
  if (!(await insertJobOnce(deps.db, row))) {
    const existing = await findJobById(deps.db, id);
    if (existing?.status !== "pending") return id;
  }
  // Under per-key limits the tick waits its turn like any new job (src/scheduling/limits.ts).
  if (row.waitingFor) await releaseLimited(deps, schedule.userId, [row]);
  else await enqueueJob(deps, row);
  return id;
}

/** Registers again every schedule Redis has lost (a flush, a new Redis, a failed registration). */
export async function reconcileSchedules(deps: Pick<ServiceDeps, "db" | "producer" | "log">): Promise<number> {
  let repaired = 0;
  for (const row of await allActiveSchedules(deps.db)) {
    if (await deps.producer.at(row.shard).queue(SCHEDULES_QUEUE).getJobScheduler(row.id)) continue;
    await registerSchedule(deps.producer, row);
    repaired++;
  }
  if (repaired > 0) deps.log.info("re-registered schedules missing from Redis", { count: repaired });
  return repaired;
}
