import { UnrecoverableError, type Job } from "bullmq";
import type { Config } from "../config";
import { handlers, isHandlerName } from "../handlers/catalog";
import { PermanentFailure } from "../handlers/types";
import { parseJobKey } from "../queues";
import { readEnvelope } from "../services/job-envelope";


/** Runs one job with its handler from the catalog; a cancelled job fails without further attempts. */
export function createProcessor(config: Pick<Config, "prefix" | "allowPrivateUrls">) {
  return async (job: Job, _token?: string, signal?: AbortSignal): Promise<unknown> => {
    if (!isHandlerName(job.name)) throw new UnrecoverableError(`no handler named '${job.name}'`);
    const envelope = readEnvelope(job.data);
    if (envelope.failedChild) throw new UnrecoverableError(`child job ${envelope.failedChild} failed`);
    const children: Record<string, unknown> = { ...envelope.kept };
    if (envelope.parent) {
      const values = await job.getChildrenValues();
      for (const [key, value] of Object.entries(values)) children[parseJobKey(key)?.jobId ?? key] = value;
    }
    const abort = signal ?? new AbortController().signal;
    try {
      return await handlers[job.name].run({
        data: envelope.data,
        children,
        signal: abort,
        attemptsMade: (envelope.attemptsBefore ?? 0) + job.attemptsMade,
        config,
      });
    } catch (err) {
      if (abort.aborted) throw new UnrecoverableError(`cancelled: ${(err as Error).message}`);
      if (err instanceof PermanentFailure) throw new UnrecoverableError(err.message);
      throw err;
    }
  };
}
