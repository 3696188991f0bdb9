import { UnrecoverableError, type Job } from "bullmq";
import type { Config } from "../config";
import { handlers, isHandlerName } from "../handlers/catalog";
import { PermanentFailure } from "../handlers/types";
import { readEnvelope } from "../services/job-envelope";

/** BullMQ keys children's results by their full Redis key (`prefix:queue:id`); users know only the id. */
export function childJobId(key: string, prefix: string): string {
  const rest = key.startsWith(prefix + ":") ? key.slice(prefix.length + 1) : key;
  const colon = rest.indexOf(":");
  return colon >= 0 ? rest.slice(colon + 1) : rest;
}

/** Runs one job with its handler from the catalog; a cancelled job fails without further attempts. */
export function createProcessor(config: Pick<Config, "prefix" | "allowPrivateUrls">) {
  return async (job: Job, _token?: string, signal?: AbortSignal): Promise<unknown> => {
    if (!isHandlerName(job.name)) throw new UnrecoverableError(`no handler named '${job.name}'`);
    const envelope = readEnvelope(job.data);
    if (envelope.failedChild) throw new UnrecoverableError(`child job ${envelope.failedChild} failed`);
    const children: Record<string, unknown> = { ...envelope.kept };
    if (envelope.parent) {
      const values = await job.getChildrenValues();
      for (const [key, value] of Object.entries(values)) children[childJobId(key, config.prefix)] = value;
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
