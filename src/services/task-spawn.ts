/**
 * Jobs an `http` task's service adds to the task's graph flow, through its callback URL: the path's
 * single-use token is bound to one attempt, so it authorises exactly that attempt, while its request
 * is in flight or while it is parked by a 202 — never after the callback was used or its wait ended.
 */
import { findCallback } from "../db/queries/http-tasks";
import { findSpawner } from "../db/queries/spawn";
import { Conflict } from "../errors";
import type { GraphJobInput } from "../scheduling/graph-plan";
import { AttemptEnded, spawnJobs, type SpawnDeps, type SpawnedJob } from "./spawn";
import { CALLBACK_TOKEN, CallbackNotFound, hashCallbackToken } from "./task-callbacks";

export async function spawnForTask(deps: SpawnDeps, token: string, jobs: GraphJobInput[]): Promise<{ jobs: SpawnedJob[] }> {
  if (!CALLBACK_TOKEN.test(token)) throw new CallbackNotFound();
  const target = await findCallback(deps.db, hashCallbackToken(token));
  if (!target) throw new CallbackNotFound();
  if (target.outcome || target.resolution)
    throw new AttemptEnded(target.outcome ? `its callback was used (${target.outcome.kind})` : `its wait ended (${target.resolution})`);
  if (target.tableName !== "flow_jobs")
    throw new Conflict("not_a_graph", "Only a job of a graph flow can add jobs to its flow; this http task is a single job.");
  const spawner = await findSpawner(deps.db, target.jobId);
  if (!spawner) throw new CallbackNotFound();
  return { jobs: await spawnJobs(deps, spawner, jobs) };
}
