import { useRef, useState } from "preact/hooks";
import { api, ApiError, query } from "../lib/api";
import { html } from "../lib/html";
import { useLiveTarget } from "../lib/context";
import { usePaged, type Page } from "../lib/paging";
import { JOB_STATUSES, ago, isFinished, when } from "../lib/format";
import { href } from "../lib/route";
import type { LiveEvent } from "../lib/live";
import { withJobEvent } from "../lib/tree";
import { Confirm, ErrorNote, Pager, StatusBadge } from "../components/common";
import { FilterForm, type Filters } from "../components/filters";
import { JobPanel, type JobLike } from "../components/job-panel";

type Job = JobLike & { scheduleId: string | null };
const ALL = { all: true } as const;

/** A single job's event (no flowId) applied to its view. */
const applied = (job: Job, e: LiveEvent): Job => withJobEvent(job, e) ?? job;

/** The events that change a single job's view. */
const isSingleJobEvent = (e: LiveEvent) => e.event.startsWith("job.") && !e.flowId && !!e.jobId;

export function Jobs({ filters }: { filters: Filters }) {
  const key = JSON.stringify(filters);
  const paged = usePaged<Job>((cursor) => api<Page<Job>>("GET", `/v1/jobs${query({ ...filters, limit: 20, cursor })}`), key);
  useLiveTarget(
    ALL,
    {
      load: async () => {},
      onEvents: (events) => {
        const mine = events.filter(isSingleJobEvent);
        if (!mine.length || !paged.page) return;
        const known = new Set(paged.page.items.map((j) => j.id));
        if (mine.some((e) => !known.has(e.jobId!)) && paged.index === 0) return paged.reload();
        let items = paged.page.items;
        for (const e of mine) items = items.map((j) => (j.id === e.jobId ? applied(j, e) : j));
        paged.setPage({ ...paged.page, items });
      },
    },
    [],
  );
  const search = (f: Filters) => (location.hash = href({ page: "jobs", ...f }));
  return html`<section aria-labelledby="h-jobs">
    <h1 id="h-jobs">Jobs</h1>
    <p class="hint">Single jobs and schedule runs; a flow's jobs are on its page.</p>
    <${FilterForm} statuses=${JOB_STATUSES} value=${filters} onSearch=${search} what="jobs" key=${key} />
    <${ErrorNote} error=${paged.error} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No jobs${filters.status || filters.name || filters.data ? " match this search" : " yet"}.</p>`
      : html`<table class="list">
          <caption class="sr-only">Jobs, newest first</caption>
          <thead><tr><th scope="col">Handler</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Created</th></tr></thead>
          <tbody>
            ${paged.page.items.map(
              (j) => html`<tr key=${j.id} data-job=${j.id}>
                <td data-label="Handler"><a href=${href({ page: "job", id: j.id })}>${j.name}</a>${j.scheduleId ? html` <small>(schedule)</small>` : ""}</td>
                <td data-label="Status"><${StatusBadge} status=${j.status} /></td>
                <td data-label="Attempts">${j.attemptsMade}</td>
                <td data-label="Created"><time datetime=${j.createdAt} title=${when(j.createdAt)}>${ago(j.createdAt)}</time></td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />
  </section>`;
}

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [asking, setAsking] = useState<"cancel" | "retry" | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const recording = useRef<LiveEvent[] | null>(null);
  useLiveTarget(
    ALL,
    {
      load: async () => {
        try {
          setJob(await api<Job>("GET", `/v1/jobs/${encodeURIComponent(id)}`));
          setError(null);
        } catch (e) {
          setError(e as ApiError);
        }
      },
      onEvents: (events) => {
        const mine = events.filter((e) => isSingleJobEvent(e) && e.jobId === id);
        if (recording.current) recording.current.push(...mine);
        if (mine.length) setJob((j) => (j ? mine.reduce(applied, j) : j));
      },
    },
    [id],
  );
  const act = async (action: "cancel" | "retry") => {
    setAsking(null);
    setActionError(null);
    recording.current = [];
    try {
      // Events newer than the answer may already be here (a retried job can finish first): they win.
      const answer = await api<Job>("POST", `/v1/jobs/${encodeURIComponent(id)}/${action}`);
      setJob(recording.current.reduce(applied, answer));
    } catch (e) {
      setActionError(e as ApiError);
    } finally {
      recording.current = null;
    }
  };
  if (error)
    return html`<section aria-labelledby="h-job">
      <h1 id="h-job">${error.status === 404 ? "Job not found" : "Could not load the job"}</h1>
      <p>${error.status === 404 ? `No job with id ${id} exists for you.` : error.message}</p>
      <p><a href=${href({ page: "jobs" })}>Back to jobs</a></p>
    </section>`;
  if (!job) return html`<section><h1>Job</h1><p aria-busy="true">Loading…</p></section>`;
  return html`<section aria-labelledby="h-job-title">
    <p class="crumbs"><a href=${href({ page: "jobs" })}>Jobs</a> /</p>
    <h1 id="h-job-title">Job <code>${job.id}</code></h1>
    <div class="actions" role="group" aria-label="Job actions">
      <button type="button" disabled=${isFinished(job.status)} onClick=${() => setAsking("cancel")}>Cancel</button>
      <button type="button" disabled=${job.status !== "failed" && job.status !== "cancelled"} onClick=${() => setAsking("retry")}>Retry</button>
    </div>
    <${ErrorNote} error=${actionError} />
    <${Confirm}
      open=${asking !== null}
      title=${asking === "cancel" ? "Cancel this job?" : "Retry this job?"}
      confirmLabel=${asking === "cancel" ? "Cancel job" : "Retry job"}
      danger=${asking === "cancel"}
      onConfirm=${() => asking && act(asking)}
      onCancel=${() => setAsking(null)}
    >${asking === "cancel" ? "The job stops and is marked cancelled." : "The job runs again under a new BullMQ id."}</${Confirm}>
    <${JobPanel} job=${job} heading="h2" />
  </section>`;
}
