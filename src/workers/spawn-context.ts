import { TypeCompiler } from "@sinclair/typebox/compiler";
import { DelayedError, type Job } from "bullmq";
import { t } from "elysia";
import { GraphJobSchema } from "../api/models/flows";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { listHandlerRows } from "../db/queries/registry";
import { findSpawner, unparkJoined, type SpawnerRow } from "../db/queries/spawn";
import { AppError, InvalidInput, TooLarge } from "../errors";
import { PermanentFailure } from "../handlers/types";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import type { GraphJobInput } from "../scheduling/graph-plan";
import { readJob } from "../services/job-envelope";
import { createHandlerRegistry } from "../services/handler-registry";
import { joinEnded, joinState, parkOnJoin, spawnJobs, type SpawnedJob } from "../services/spawn";

/**
 * Thrown by `ctx.waitFor` when what it waits for has not all ended: the handler stops there and the
 * job parks (see src/services/spawn.ts). The park happens whatever the handler does with this error:
 * a handler that catches it and returns still parks, and runs again when the join ends.
 */
export class JoinPending extends Error {
  constructor(keys: string[]) {
    super(`waiting for ${keys.length} job(s) (${keys.slice(0, 5).join(", ")}${keys.length > 5 ? ", …" : ""}); the handler runs again when they have ended`);
    this.name = "JoinPending";
  }
}

/** What a module handler's `ctx` gets to add jobs to its graph flow and join on them. */
export interface SpawnContext {
  spawn(jobs: GraphJobInput[]): Promise<SpawnedJob[]>;
  waitFor(keys: string[]): Promise<Record<string, unknown>>;
}

/** The registry a spawn checks names and data against: the handlers every worker registered, re-read every few seconds. */
function registryReader(db: Db, config: Pick<Config, "flowQueues" | "externalQueues" | "allowPrivateUrls">) {
  const registry = createHandlerRegistry(config);
  let readAt = 0;
  return async () => {
    if (Date.now() - readAt > 5_000) {
      registry.load(await listHandlerRows(db));
      readAt = Date.now();
    }
    return registry;
  };
}

/** The route's own schema for a spawn's jobs: a module's spawn is checked exactly as the REST route's. */
const jobsShape = TypeCompiler.Compile(t.Array(GraphJobSchema, { minItems: 1, maxItems: 100_000 }));
const joinKeys = TypeCompiler.Compile(t.Array(t.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100_000 }));

/** What the REST route's schema and body limit would say of the same request, as the same errors. */
function checkShape(check: typeof joinKeys | typeof jobsShape, value: unknown, root: string, bodyLimit: number) {
  if (!check.Check(value)) {
    const first = check.Errors(value).First();
    const path = `${root}${first?.path ?? ""}`;
    throw new InvalidInput(`Invalid ${root.slice(1)} at ${path}: ${first?.message ?? "does not match"}.`, [{ path, message: first?.message ?? "does not match" }]);
  }
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > bodyLimit) throw new TooLarge(`The spawn is ${bytes} bytes, more than ${bodyLimit} (FLOWD_BODY_LIMIT).`, { limit: bodyLimit });
}

/** A refusal inside a handler fails the attempt for good (the same spawn would be refused again), keeping its code and details. */
function permanent(err: unknown): never {
  if (err instanceof AppError) throw Object.assign(new PermanentFailure(`${err.code}: ${err.message}`), { code: err.code, details: err.details });
  throw err;
}

/**
 * Spawns and joins for one run of a module handler on a flow job. `resume` runs first on a wake-up:
 * a join not over yet parks again without running the handler. After the handler, `settle` parks
 * the job if it asked to wait, or unparks a woken job whose attempt failed.
 */
export function createSpawnContexts(deps: { db: Db; producer: Producer; log: Logger; config: Pick<Config, "flowQueues" | "maxFlowJobs" | "externalQueues" | "allowPrivateUrls" | "bodyLimit" | "prefix"> }) {
  const registry = registryReader(deps.db, deps.config);
  return (job: Job, token: string | undefined) => {
    const { meta } = readJob(job);
    const attempt = (meta.attemptsCarried ?? 0) + job.attemptsMade;
    let waiting: string[] | null = null;
    let woken: SpawnerRow | null = null;
    const self = async () => {
      const row = await findSpawner(deps.db, job.id!);
      if (!row) throw new PermanentFailure("the job's row is gone (its flow was deleted)");
      return row;
    };
    const park = async (spawner: Pick<SpawnerRow, "id">, waitIds: string[]): Promise<never> => {
      await parkOnJoin(deps, spawner, waitIds, attempt, (until) => job.moveToDelayed(until, token), () => job.promote());
      throw new DelayedError();
    };
    const ctx: SpawnContext = {
      async spawn(jobs) {
        try {
          checkShape(jobsShape, jobs, "/jobs", deps.config.bodyLimit);
        } catch (err) {
          permanent(err);
        }
        const spawner = await self();
        return spawnJobs({ ...deps, registry: await registry() }, spawner, jobs).catch(permanent);
      },
      async waitFor(keys) {
        try {
          checkShape(joinKeys, keys, "/waitFor", deps.config.bodyLimit);
        } catch (err) {
          permanent(err);
        }
        const spawner = await self();
        const state = await joinState(deps.db, spawner, keys).catch(permanent);
        if (!state.done) {
          waiting = state.waitIds;
          throw new JoinPending(keys);
        }
        if (state.failed.length > 0)
          throw new PermanentFailure(
            `joined job(s) did not complete: ${state.failed.map((f) => `${f.key} ${f.status}${(f.error as { message?: string } | null)?.message ? ` (${(f.error as { message: string }).message})` : ""}`).join("; ")}`,
          );
        return state.results;
      },
    };
    return {
      ctx,
      /** A wake-up of a parked join (or its recheck): parks again while it is not over. */
      async resume() {
        const row = await findSpawner(deps.db, job.id!);
        if (!row?.waitsOn) return;
        woken = row;
        if (row.waitingFor === "children" && !(await joinEnded(deps.db, row))) await park(row, row.waitsOn);
      },
      /** After the handler: true when the job parked (the caller rethrows DelayedError). */
      async settle(failed: boolean) {
        const waitIds = waiting;
        waiting = null;
        if (waitIds) await park(await self(), waitIds);
        if (failed && woken) await unparkJoined(deps.db, woken.id);
      },
    };
  };
}
