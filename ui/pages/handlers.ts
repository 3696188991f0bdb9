import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { when } from "../lib/format";
import { ErrorNote, Json } from "../components/common";

interface Handler {
  name: string;
  queue: string;
  source: string;
  description: string | null;
  dataSchema: unknown;
  workers: number;
  lastSeenAt: string | null;
}
interface Worker {
  id: string;
  host: string;
  pid: number | null;
  version: string | null;
  queues: string[];
  handlers: string[];
  concurrency: number | null;
  startedAt: string | null;
  lastSeenAt: string | null;
  kind: string;
}

/**
 * Handlers and workers as the registry holds them. Workers announce themselves in Postgres, not in
 * the event log, so this page reads once and again only when asked (Reload): never on a timer.
 */
export function Handlers() {
  const [data, setData] = useState<{ handlers: Handler[]; workers: Worker[] } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    Promise.all([api<{ items: Handler[] }>("GET", "/v1/handlers"), api<{ items: Worker[] }>("GET", "/v1/workers")])
      .then(([h, w]) => (setData({ handlers: h.items, workers: w.items }), setError(null)))
      .catch((e) => setError(e as ApiError));
  }, [version]);
  return html`<section aria-labelledby="h-handlers">
    <h1 id="h-handlers">Handlers and workers</h1>
    <div class="actions"><button type="button" onClick=${() => setVersion((v) => v + 1)}>Reload</button></div>
    <${ErrorNote} error=${error} />
    ${data &&
    html`<h2>Handlers</h2>
      <table class="list">
        <caption class="sr-only">Handlers by queue</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Queue</th><th scope="col">Source</th><th scope="col">Workers</th><th scope="col">Data</th></tr></thead>
        <tbody>
          ${data.handlers.map(
            (h) => html`<tr key=${`${h.queue}:${h.name}`} data-handler=${h.name}>
              <td data-label="Name"><div><strong>${h.name}</strong>${h.description ? html`<br /><small>${h.description}</small>` : ""}</div></td>
              <td data-label="Queue">${h.queue}</td>
              <td data-label="Source">${h.source}</td>
              <td data-label="Workers">${h.workers}</td>
              <td data-label="Data">${h.dataSchema ? html`<details><summary>schema</summary><${Json} value=${h.dataSchema} label=${`Data schema of ${h.name}`} /></details>` : "any object"}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <h2>Workers</h2>
      ${data.workers.length === 0
        ? html`<p class="empty">No live workers.</p>`
        : html`<table class="list">
            <caption class="sr-only">Live workers</caption>
            <thead><tr><th scope="col">Worker</th><th scope="col">Queues</th><th scope="col">Concurrency</th><th scope="col">Started</th><th scope="col">Last seen</th></tr></thead>
            <tbody>
              ${data.workers.map(
                (w) => html`<tr key=${w.id} data-worker=${w.id}>
                  <td data-label="Worker"><code>${w.host}${w.pid !== null ? `:${w.pid}` : ""}</code> <small>${w.kind}${w.version ? ` ${w.version}` : ""}</small></td>
                  <td data-label="Queues">${w.queues.join(", ")}</td>
                  <td data-label="Concurrency">${w.concurrency ?? "–"}</td>
                  <td data-label="Started">${when(w.startedAt)}</td>
                  <td data-label="Last seen">${when(w.lastSeenAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table>`}`}
  </section>`;
}
