import { useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { usePaged, type Page } from "../lib/paging";
import { when } from "../lib/format";
import { Confirm, ErrorNote, Pager } from "../components/common";
import { ApiProblems } from "../components/field-errors";

interface Schedule {
  id: string;
  name: string;
  pattern: string | null;
  every: number | null;
  tz: string | null;
  job: { name: string; data: Record<string, unknown> };
  lastRunAt: string | null;
  nextRunAt: string | null;
}

/** Schedules: create (the API checks cron, time zone and job; its messages are shown as they come), delete, next run. */
export function Schedules() {
  const paged = usePaged<Schedule>((cursor) => api<Page<Schedule>>("GET", `/v1/schedules${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`), "");
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const remove = async (s: Schedule) => {
    setDeleting(null);
    try {
      await api("DELETE", `/v1/schedules/${encodeURIComponent(s.id)}`);
      paged.reload();
    } catch (e) {
      setDeleteError(e as ApiError);
    }
  };
  return html`<section aria-labelledby="h-schedules">
    <h1 id="h-schedules">Schedules</h1>
    <${CreateSchedule} onCreated=${paged.reload} />
    <h2>All schedules</h2>
    <${ErrorNote} error=${paged.error ?? deleteError} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No schedules yet.</p>`
      : html`<table class="list">
          <caption class="sr-only">Schedules</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">When</th><th scope="col">Job</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            ${paged.page.items.map(
              (s) => html`<tr key=${s.id}>
                <td data-label="Name">${s.name}</td>
                <td data-label="When"><code>${s.pattern ?? `every ${s.every} ms`}</code>${s.tz ? ` (${s.tz})` : ""}</td>
                <td data-label="Job">${s.job.name}</td>
                <td data-label="Next run">${when(s.nextRunAt)}</td>
                <td data-label="Last run">${when(s.lastRunAt)}</td>
                <td><button type="button" class="danger" onClick=${() => setDeleting(s)} aria-label=${`Delete schedule ${s.name}`}>Delete</button></td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />
    <${Confirm} open=${!!deleting} title="Delete this schedule?" confirmLabel="Delete schedule" danger=${true}
      onConfirm=${() => deleting && remove(deleting)} onCancel=${() => setDeleting(null)}>
      ${deleting ? `"${deleting.name}" stops running; the jobs it already made stay.` : ""}
    </${Confirm}>
  </section>`;
}

function CreateSchedule({ onCreated }: { onCreated: () => void }) {
  const [form, setForm] = useState({ name: "", kind: "pattern", when: "*/5 * * * *", tz: "", job: "echo", data: "{}" });
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setDone(null);
    let data: unknown;
    try {
      data = JSON.parse(form.data || "{}");
    } catch {
      return setError(new ApiError(400, "invalid_json", "The job data is not valid JSON."));
    }
    const body: Record<string, unknown> = { name: form.name, job: { name: form.job, data } };
    if (form.kind === "pattern") body.pattern = form.when;
    else body.every = Number(form.when);
    if (form.tz) body.tz = form.tz;
    try {
      const s = await api<Schedule>("POST", "/v1/schedules", body);
      setError(null);
      setDone(`Schedule "${s.name}" created; next run ${when(s.nextRunAt)}.`);
      onCreated();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return html`<form class="card form" onSubmit=${submit} aria-labelledby="h-new-schedule">
    <h2 id="h-new-schedule">New schedule</h2>
    <label>Name <input required value=${form.name} onInput=${set("name")} maxlength="200" /></label>
    <fieldset>
      <legend>Runs</legend>
      <label><input type="radio" name="kind" value="pattern" checked=${form.kind === "pattern"} onChange=${set("kind")} /> on a cron pattern</label>
      <label><input type="radio" name="kind" value="every" checked=${form.kind === "every"} onChange=${set("kind")} /> every N milliseconds</label>
    </fieldset>
    <label>${form.kind === "pattern" ? "Cron pattern" : "Every (ms)"} <input required value=${form.when} onInput=${set("when")} /></label>
    <label>Time zone (optional) <input value=${form.tz} onInput=${set("tz")} placeholder="Europe/Paris" /></label>
    <label>Handler <input required value=${form.job} onInput=${set("job")} /></label>
    <label>Job data (JSON) <textarea rows="3" value=${form.data} onInput=${set("data")}></textarea></label>
    <${ApiProblems} error=${error} />
    ${done && html`<p role="status" class="ok-note">${done}</p>`}
    <button type="submit" class="primary">Create schedule</button>
  </form>`;
}
