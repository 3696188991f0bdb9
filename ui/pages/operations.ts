import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { html } from "../lib/html";
import { ago, when } from "../lib/format";
import { ErrorNote, StatusBadge } from "../components/common";

interface Operation {
  id: string;
  kind: string;
  filter: Record<string, unknown>;
  status: string;
  matched: number;
  done: number;
  skipped: number;
  failed: number;
  reasons: { code: string; message: string; count: number }[];
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
}

/** Bulk actions by filter (POST /v1/{flows,jobs}/bulk/…), newest first: their progress, reasons, and a way to stop one. */
export function Operations() {
  const [items, setItems] = useState<Operation[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    api<{ items: Operation[] }>("GET", "/v1/operations?limit=50").then(
      (r) => (setItems(r.items), setError(null)),
      (err: Error) => setError(err.message),
    );
  useEffect(() => {
    void load();
    // An operation moves in batches in the background: a light poll shows its counts advance.
    const timer = setInterval(() => void load(), 2_000);
    return () => clearInterval(timer);
  }, []);
  const cancel = (id: string) =>
    api("POST", `/v1/operations/${id}/cancel`).then(
      () => load(),
      (err: Error) => setError(err.message),
    );
  return html`<section aria-labelledby="h-operations">
    <h1 id="h-operations">Operations</h1>
    <p class="hint">Bulk cancel, retry and delete by filter, run in the background in batches (flowd flows retry --status failed …).</p>
    <${ErrorNote} error=${error} />
    ${items &&
    (items.length === 0
      ? html`<p class="empty">No bulk operation yet.</p>`
      : html`<table class="list">
          <caption class="sr-only">Bulk operations, newest first</caption>
          <thead><tr><th scope="col">Action</th><th scope="col">Filter</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col"><span class="sr-only">Stop</span></th></tr></thead>
          <tbody>
            ${items.map(
              (o) => html`<tr key=${o.id} data-operation=${o.id} data-status=${o.status}>
                <td data-label="Action"><code>${o.kind}</code></td>
                <td data-label="Filter"><code class="clip" title=${JSON.stringify(o.filter)}>${JSON.stringify(o.filter)}</code></td>
                <td data-label="Status"><${StatusBadge} status=${o.status} />${o.error && html`<p class="error-note">${o.error}</p>`}</td>
                <td data-label="Progress">
                  <span data-counts>${o.done} done, ${o.skipped} skipped, ${o.failed} failed of ${o.matched}</span>
                  ${o.reasons.length > 0 && html`<ul class="dep-list">${o.reasons.map((r) => html`<li key=${r.code}><code>${r.code}</code> ×${r.count}: ${r.message}</li>`)}</ul>`}
                </td>
                <td data-label="Started"><time datetime=${o.createdAt} title=${when(o.createdAt)}>${ago(o.createdAt)}</time></td>
                <td>${o.status === "running" && html`<button type="button" onClick=${() => void cancel(o.id)}>Stop</button>`}</td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
  </section>`;
}
