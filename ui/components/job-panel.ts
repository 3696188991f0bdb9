import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { html } from "../lib/html";
import { duration, when } from "../lib/format";
import { Json, StatusBadge } from "./common";
import { Decision } from "./decision";
import type { JobLog } from "../lib/tree";
import { describeWait, type WaitingFor } from "../lib/waiting";

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
  progress?: unknown;
  log?: JobLog;
  /** A graph flow's job: its key, by which the flow names it (its name is its handler's). */
  key?: string;
  /** An http task its service answered 202: it waits for the callback until then. */
  callbackUntil?: string;
  /** Why it waits (a wait step, a join, a hold for dependencies or a per-key limit), on what key, until when; live from events. */
  waitingFor?: WaitingFor;
}

/** A number from 0 to 100 is a bar; anything else the handler reported is shown as JSON. */
function Progress({ value }: { value: unknown }) {
  if (typeof value === "number" && value >= 0 && value <= 100)
    return html`<p class="job-progress"><progress max="100" value=${value} aria-label="Job progress"></progress> ${Math.round(value)}%</p>`;
  return html`<${Json} value=${value} label="Job progress" />`;
}

function Log({ log }: { log: JobLog }) {
  const text = log.lines.map((l) => `${l.at.slice(11, 23)}  ${l.line}`).join("\n");
  return html`<pre class="json job-log" tabindex="0" aria-label="Job log">${text}</pre>
    ${log.dropped > 0 && html`<p class="hint">${log.dropped} more line${log.dropped === 1 ? "" : "s"} dropped (the log keeps the first 1,000 lines or 64 KiB).</p>`}`;
}

/** An approval step's decision, from its result (`{ approved, by, at, comment? }`, kept on a rejected step too). */
function decisionOf(job: JobLike): string | null {
  const r = job.result as { approved?: unknown; by?: unknown; at?: unknown; comment?: unknown } | null;
  if (job.name !== "approval" || !r || typeof r !== "object" || typeof r.approved !== "boolean") return null;
  const by = typeof r.by === "string" ? ` By ${r.by}${typeof r.at === "string" ? `, ${when(r.at)}` : ""}` : "";
  return `${r.approved ? "Approved." : "Rejected."}${by}${typeof r.comment === "string" && r.comment ? `: “${r.comment}”` : ""}`;
}

/** Everything flowd knows about one job: data, opts, result, error with stack, attempts, timings, progress and log. */
export function JobPanel({ job, onClose, heading = "h3", children }: { job: JobLike; onClose?: () => void; heading?: "h2" | "h3"; children?: ComponentChildren }) {
  const H = heading;
  const attempts = (job.opts as { attempts?: number } | null)?.attempts ?? 1;
  const wait = describeWait(job.waitingFor, job.status, new Date(), when);
  // A decision made here stays said while the step's events end its wait, before its result arrives.
  const [decidedHere, setDecidedHere] = useState<{ id: string; text: string } | null>(null);
  const decided = decisionOf(job) ?? (decidedHere?.id === job.id ? decidedHere.text : null);
  return html`<aside class="job-panel" aria-labelledby="job-panel-title" data-job-panel=${job.id}>
    <header>
      <${H} id="job-panel-title">${job.key ?? job.name} <${StatusBadge} status=${job.status} /></${H}>
      ${onClose && html`<button type="button" onClick=${onClose} aria-label="Close the job panel">Close</button>`}
    </header>
    <dl class="facts">
      ${job.key !== undefined && html`<div><dt>Handler</dt><dd>${job.name}</dd></div>`}
      <div><dt>Id</dt><dd><code>${job.id}</code></dd></div>
      <div><dt>BullMQ id</dt><dd><code>${job.jobId}</code></dd></div>
      <div><dt>Queue</dt><dd>${job.queueName}</dd></div>
      <div><dt>Attempts</dt><dd>${job.attemptsMade} of ${attempts}</dd></div>
      ${job.callbackUntil && job.status === "active" && html`<div><dt>Parked</dt><dd>its service answered 202; waits for the callback until ${when(job.callbackUntil)}</dd></div>`}
      ${wait && html`<div data-waiting=${job.waitingFor!.reason} data-wait-kind=${wait.kind}><dt>${wait.kind === "held" ? "Held" : "Waiting"}</dt><dd>${wait.sentence}</dd></div>`}
      <div><dt>Created</dt><dd>${when(job.createdAt)}</dd></div>
      <div><dt>Last change</dt><dd>${when(job.updatedAt)} (${duration(new Date(job.updatedAt).getTime() - new Date(job.createdAt).getTime())} after creation)</dd></div>
    </dl>
    ${decided
      ? html`<h4>Decision</h4><p class="decision-done" role="status">${decided}</p>`
      : job.waitingFor?.reason === "approval" &&
        job.status === "active" &&
        html`<h4>Decision</h4>
          <p class="prompt">${(job.data as { prompt?: string } | null)?.prompt ?? ""}</p>
          <${Decision}
            jobId=${job.id}
            key=${job.jobId}
            onDecided=${(approved: boolean) => setDecidedHere({ id: job.id, text: approved ? "Approved." : "Rejected." })}
          />`}
    ${children}
    <h4>Data</h4>
    <${Json} value=${job.data} label="Job data" />
    <h4>Options</h4>
    <${Json} value=${job.opts} label="Job options" />
    ${job.progress !== undefined && html`<h4>Progress</h4><${Progress} value=${job.progress} />`}
    <h4>Result</h4>
    <${Json} value=${job.result} label="Job result" />
    ${job.error &&
    html`<h4>Error</h4>
      <p class="error-note">${job.error.message}</p>
      ${job.error.stack && html`<pre class="json stack" tabindex="0" aria-label="Stack trace">${job.error.stack}</pre>`}`}
    ${job.log && html`<h4>Log</h4><${Log} log=${job.log} />`}
  </aside>`;
}
