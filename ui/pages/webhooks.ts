import { useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { usePaged, type Page } from "../lib/paging";
import { when } from "../lib/format";
import { Confirm, ErrorNote, Pager } from "../components/common";
import { ApiProblems } from "../components/field-errors";
import { EVENT_TYPE_NAMES } from "../../src/event-types";

interface Webhook {
  id: string;
  url: string;
  events: string[];
  description?: string | null;
  disabled: boolean;
  disabledReason: string | null;
  createdAt: string;
}
interface Delivery {
  id: number;
  eventSeq: number;
  attempt: number;
  statusCode: number | null;
  durationMs: number | null;
  error: string | null;
  at: string;
}


export function Webhooks() {
  const paged = usePaged<Webhook>((cursor) => api<Page<Webhook>>("GET", `/v1/webhooks${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`), "");
  const [open, setOpen] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Webhook | null>(null);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const remove = async (w: Webhook) => {
    setDeleting(null);
    try {
      await api("DELETE", `/v1/webhooks/${encodeURIComponent(w.id)}`);
      paged.reload();
    } catch (e) {
      setDeleteError(e as ApiError);
    }
  };
  return html`<section aria-labelledby="h-webhooks">
    <h1 id="h-webhooks">Webhooks</h1>
    <${CreateWebhook} onCreated=${paged.reload} />
    <h2>Endpoints</h2>
    <${ErrorNote} error=${paged.error ?? deleteError} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No webhooks yet.</p>`
      : html`<ul class="cards-list">
          ${paged.page.items.map(
            (w) => html`<li key=${w.id} class="card">
              <p class="url"><code>${w.url}</code></p>
              <p>${w.events.join(", ")}${w.description ? ` — ${w.description}` : ""}</p>
              <p>${w.disabled ? html`<strong class="badge s-failed">disabled</strong> ${w.disabledReason ?? ""}` : html`<span class="badge s-completed">active</span>`}
                <small> since ${when(w.createdAt)}</small></p>
              <div class="actions">
                <button type="button" aria-expanded=${open === w.id ? "true" : "false"} onClick=${() => setOpen(open === w.id ? null : w.id)}>Deliveries</button>
                <button type="button" class="danger" onClick=${() => setDeleting(w)} aria-label=${`Delete webhook ${w.url}`}>Delete</button>
              </div>
              ${open === w.id && html`<${Deliveries} id=${w.id} />`}
            </li>`,
          )}
        </ul>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />
    <${Confirm} open=${!!deleting} title="Delete this webhook?" confirmLabel="Delete webhook" danger=${true}
      onConfirm=${() => deleting && remove(deleting)} onCancel=${() => setDeleting(null)}>
      ${deleting ? `No more deliveries go to ${deleting.url}.` : ""}
    </${Confirm}>
  </section>`;
}

function Deliveries({ id }: { id: string }) {
  const paged = usePaged<Delivery>(async () => {
    const r = await api<{ items: Delivery[]; nextBefore: number | null }>("GET", `/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`);
    return { items: r.items, nextCursor: null };
  }, id);
  if (paged.error) return html`<${ErrorNote} error=${paged.error} />`;
  if (!paged.page) return html`<p aria-busy="true">Loading…</p>`;
  if (!paged.page.items.length) return html`<p class="empty">No delivery attempts yet.</p>`;
  return html`<table class="list">
    <caption class="sr-only">Delivery attempts, newest first</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Attempt</th><th scope="col">Answer</th></tr></thead>
    <tbody>
      ${paged.page.items.map(
        (d) => html`<tr key=${d.id}>
          <td data-label="When">${when(d.at)}</td>
          <td data-label="Event">#${d.eventSeq}</td>
          <td data-label="Attempt">${d.attempt}</td>
          <td data-label="Answer">${d.statusCode ?? "–"}${d.durationMs !== null ? ` in ${d.durationMs} ms` : ""}${d.error ? ` — ${d.error}` : ""}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

function CreateWebhook({ onCreated }: { onCreated: () => void }) {
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [events, setEvents] = useState<string[]>(["*"]);
  const [error, setError] = useState<ApiError | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const toggle = (t: string) => setEvents((cur) => (t === "*" ? ["*"] : cur.includes(t) ? cur.filter((x) => x !== t) : [...cur.filter((x) => x !== "*"), t]));
  const submit = async (e: Event) => {
    e.preventDefault();
    setSecret(null);
    try {
      const w = await api<Webhook & { secret: string }>("POST", "/v1/webhooks", { url, events, ...(description ? { description } : {}) });
      setError(null);
      setSecret(w.secret);
      setUrl("");
      onCreated();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return html`<form class="card form" onSubmit=${submit} aria-labelledby="h-new-webhook">
    <h2 id="h-new-webhook">New webhook</h2>
    <label>URL <input type="url" required value=${url} onInput=${(e: Event) => setUrl((e.target as HTMLInputElement).value)} placeholder="https://example.com/hooks/flowd" /></label>
    <label>Description (optional) <input value=${description} onInput=${(e: Event) => setDescription((e.target as HTMLInputElement).value)} /></label>
    <fieldset>
      <legend>Events</legend>
      ${["*", ...EVENT_TYPE_NAMES].map(
        (t) => html`<label key=${t}><input type="checkbox" checked=${events.includes(t)} onChange=${() => toggle(t)} /> ${t === "*" ? "all events" : t}</label>`,
      )}
    </fieldset>
    <${ApiProblems} error=${error} />
    ${secret &&
    html`<div class="secret" role="status">
      <p><strong>Signing secret — shown once, copy it now:</strong></p>
      <p><code data-secret>${secret}</code></p>
    </div>`}
    <button type="submit" class="primary">Create webhook</button>
  </form>`;
}
