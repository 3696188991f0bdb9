import type { StreamEvent } from "./status";
import { parseJson } from "./status";

/**
 * BullMQ's `progress` stream event (`updateProgress`, from flowd's workers or anyone's): the job's
 * BullMQ id and the value. Recorded like a transition, so progress from users' own workers counts too.
 */
export function toProgress(e: StreamEvent): { jobId: string; progress: unknown } | null {
  if (e.fields.event !== "progress" || !e.fields.jobId) return null;
  return { jobId: e.fields.jobId, progress: parseJson(e.fields.data) };
}
