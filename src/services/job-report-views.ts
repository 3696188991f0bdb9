import type { Db } from "../db/client";
import { reportsOf, type JobReportRow } from "../db/queries/job-reports";
import type { FlowView, JobNodeView, JobView } from "./flow-views";

/** What a handler reported about a job: its last progress and its kept log lines. */
export interface JobReportView {
  progress?: unknown;
  log?: { lines: { at: string; line: string }[]; dropped: number };
}

const reportView = (r: JobReportRow): JobReportView => ({
  ...(r.progress !== null ? { progress: r.progress } : {}),
  ...(r.lines.length > 0 || r.dropped > 0 ? { log: { lines: r.lines, dropped: r.dropped } } : {}),
});

/** Adds `progress` and `log` to the jobs whose handler reported any (one query for the whole view). */
export async function withReports<V extends JobView | FlowView>(db: Db, view: V): Promise<V> {
  const jobs: JobView[] = [];
  const visit = (n: JobNodeView) => {
    jobs.push(n);
    n.children.forEach(visit);
  };
  if ("root" in view && view.root) visit(view.root);
  else if ("jobs" in view && view.jobs) jobs.push(...view.jobs);
  else jobs.push(view as JobView);
  const reports = await reportsOf(db, jobs.map((j) => j.id));
  for (const job of jobs) {
    const r = reports.get(job.id);
    if (r) Object.assign(job, reportView(r));
  }
  return view;
}
