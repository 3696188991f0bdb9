import { html } from "../lib/html";
import { duration, when } from "../lib/format";
import { Json, StatusBadge } from "./common";

export interface JobLike {
  id: string;
  jobId: string;
  name: string;
  queueName: string;
  status: string;
  data: unknown;
  opts: unknown;
  result: unknown;
  error: { message: string; stack?: string } | null;
  attemptsMade: number;
  createdAt: string;
  updatedAt: string;
}

/** Everything flowd knows about one job: data, opts, result, error with stack, attempts, timings. */
export function JobPanel({ job, onClose, heading = "h3" }: { job: JobLike; onClose?: () => void; heading?: "h2" | "h3" }) {
  const H = heading;
  const attempts = (job.opts as { attempts?: number } | null)?.attempts ?? 1;
  return html`<aside class="job-panel" aria-labelledby="job-panel-title" data-job-panel=${job.id}>
    <header>
      <${H} id="job-panel-title">${job.name} <${StatusBadge} status=${job.status} /></${H}>
      ${onClose && html`<button type="button" onClick=${onClose} aria-label="Close the job panel">Close</button>`}
    </header>
    <dl class="facts">
      <div><dt>Id</dt><dd><code>${job.id}</code></dd></div>
      <div><dt>BullMQ id</dt><dd><code>${job.jobId}</code></dd></div>
      <div><dt>Queue</dt><dd>${job.queueName}</dd></div>
      <div><dt>Attempts</dt><dd>${job.attemptsMade} of ${attempts}</dd></div>
      <div><dt>Created</dt><dd>${when(job.createdAt)}</dd></div>
      <div><dt>Last change</dt><dd>${when(job.updatedAt)} (${duration(new Date(job.updatedAt).getTime() - new Date(job.createdAt).getTime())} after creation)</dd></div>
    </dl>
    <h4>Data</h4>
    <${Json} value=${job.data} label="Job data" />
    <h4>Options</h4>
    <${Json} value=${job.opts} label="Job options" />
    <h4>Result</h4>
    <${Json} value=${job.result} label="Job result" />
    ${job.error &&
    html`<h4>Error</h4>
      <p class="error-note">${job.error.message}</p>
      ${job.error.stack && html`<pre class="json stack" tabindex="0" aria-label="Stack trace">${job.error.stack}</pre>`}`}
  </aside>`;
}
