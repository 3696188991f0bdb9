import { CronExpressionParser } from "cron-parser";
import type { Job } from "bullmq";
import type { ScheduleRow } from "../db/queries/schedules";
import { listHandlerRows } from "../db/queries/registry";
import { AppError } from "../errors";
import type { ServiceDeps, User } from "./deps";
import { checkName } from "./definitions";
import { checkInput, resolveFlow, runDefinition, runnableVersion } from "./definition-runs";
import type { DefinitionFlow } from "./definitions";
import { createHandlerRegistry, type HandlerCheck } from "./handler-registry";

/** A schedule's `run`: the definition each firing runs, with this input. */
export interface ScheduleRun {
  definition: string;
  input?: unknown;
  version?: number;
}

/** What a firing needs; workers have no handler registry of their own, so one is read when a run needs it. */
export type FiringDeps = Pick<ServiceDeps, "db" | "producer" | "log" | "config"> & Partial<Pick<ServiceDeps, "registry">>;

/** At most this many missed firings are started by one catch-up (the latest ones): a long outage does not start a flood. */
export const CATCH_UP_MAX = 10;

/** Refuses at creation what every firing would refuse: an unknown definition or version, an input the schema or the references reject. */
export async function checkScheduleRun(deps: Pick<ServiceDeps, "db">, user: User, run: ScheduleRun) {
  checkName(run.definition, "definition name", "/run/definition");
  const { definition, version } = await runnableVersion(deps.db, user, run.definition, run.version);
  const input = run.input === undefined ? {} : run.input;
  checkInput(run.definition, definition.id, version, input, "/run/input");
  resolveFlow(version.flow as DefinitionFlow, input, run.definition);
}

/** When BullMQ meant the tick to fire: its id is `repeat:<scheduler>:<millis>`. */
export function scheduledAt(tick: Job): number | null {
  const fromId = /:(\d+)$/.exec(tick.id ?? "")?.[1];
  if (fromId) return Number(fromId);
  const prev = (tick.opts as { prevMillis?: number }).prevMillis;
  return typeof prev === "number" ? prev : null;
}

/**
 * The firings after `due` up to `now`. BullMQ keeps one pending tick per schedule: after an outage it
 * fires that one, late, and then schedules the next from now, skipping the rest; these are those,
 * the latest CATCH_UP_MAX of them.
 */
export function missedFirings(schedule: Pick<ScheduleRow, "every" | "pattern" | "tz">, due: number, now: number): number[] {
  const out: number[] = [];
  if (schedule.every !== null) {
    const every = schedule.every;
    const first = due + every;
    const skip = Math.max(0, Math.floor((now - first) / every) + 1 - CATCH_UP_MAX);
    for (let at = first + skip * every; at <= now; at += every) out.push(at);
    return out;
  }
  const cron = CronExpressionParser.parse(schedule.pattern!, { currentDate: new Date(due), tz: schedule.tz ?? undefined, strict: false });
  // A cron firing every second over a long outage: bounded walk, keeping the latest.
  for (let i = 0; i < 100_000; i++) {
    const at = cron.next().getTime();
    if (at > now) break;
    out.push(at);
    if (out.length > CATCH_UP_MAX) out.shift();
  }
  return out;
}

/** The API's registry, or (in a worker, which has none) one read from Postgres for this firing. */
export async function firingRegistry(deps: FiringDeps): Promise<HandlerCheck> {
  if (deps.registry) return deps.registry;
  const fresh = createHandlerRegistry(deps.config);
  fresh.load(await listHandlerRows(deps.db));
  return fresh;
}

/**
 * One firing of a definition schedule: a run linked to the schedule, keyed by the tick, so the same
 * tick seen twice starts one flow. A definition deleted since, or an input a newer version's schema
 * refuses, starts nothing and is logged: the schedule keeps its times.
 */
export async function fireRun(deps: FiringDeps, schedule: ScheduleRow, tickId: string): Promise<string | null> {
  const registry = await firingRegistry(deps);
  try {
    const { flow } = await runDefinition(
      { ...deps, registry },
      { userId: schedule.userId },
      schedule.runDefinition!,
      { input: schedule.runInput ?? {}, ...(schedule.runVersion !== null ? { version: schedule.runVersion } : {}) },
      `flowd:schedule:${tickId}`,
      { scheduleId: schedule.id },
    );
    return flow.id;
  } catch (err) {
    if (!(err instanceof AppError) || err.status >= 500) throw err;
    deps.log.warn("a schedule's firing started no run", { scheduleId: schedule.id, definition: schedule.runDefinition, code: err.code, err: err.message });
    return null;
  }
}
