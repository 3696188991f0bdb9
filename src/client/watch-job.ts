/**
 * `flowd jobs watch ID`: a single job followed by long-polls (`GET /v1/jobs/:id?wait=20`) until it
 * finishes — one line per status it is seen in (one JSON value per line with --json), then its
 * outcome. A long-poll answers as soon as the job finishes, so the end is seen at once; an API
 * that stops answering for a while (a restart) is asked again for up to 60 s before giving up.
 * Exit: 0 completed, 1 failed or cancelled.
 */
import { ClientError, type Api } from "./api";
import { paintStatus, shortTime, type Io, type Palette } from "./output";
import { isFinishedStatus } from "./render";

const UNREACHABLE_FOR_MS = 60_000;

export async function watchJob(api: Api, id: string, io: Io, p: Palette, json: boolean): Promise<number> {
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let last = "";
  let first = true;
  let unreachableSince: number | undefined;
  for (;;) {
    let job: any;
    try {
      job = await api.request("GET", first ? path : `${path}?wait=20`);
      unreachableSince = undefined;
    } catch (err) {
      // A refusal (404, 401) is final; a connection that failed is asked again while the API restarts.
      if (!(err instanceof ClientError) || err.status !== undefined) throw err;
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > UNREACHABLE_FOR_MS) throw err;
      await Bun.sleep(500);
      continue;
    }
    first = false;
    const seen = `${job.status}:${job.attemptsMade}:${job.waitingFor?.reason ?? ""}`;
    if (seen !== last) {
      last = seen;
      if (json) io.out(JSON.stringify(job) + "\n");
      else {
        const waiting = job.waitingFor ? `  waiting for ${job.waitingFor.reason}${job.waitingFor.key ? ` (${job.waitingFor.key})` : ""}` : "";
        io.out(`${shortTime(job.updatedAt)}  ${job.name}  ${paintStatus(p, job.status)}  attempts ${job.attemptsMade}${waiting}\n`);
        if (job.status === "failed" && job.error?.message) io.out(`  ${p.red(job.error.message)}\n`);
      }
    }
    if (isFinishedStatus(job.status)) return job.status === "completed" ? 0 : 1;
  }
}
