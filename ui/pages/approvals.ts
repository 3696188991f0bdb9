import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { html } from "../lib/html";
import { ago, when } from "../lib/format";
import { href } from "../lib/route";
import { ErrorNote } from "../components/common";
import { Decision } from "../components/decision";

interface Approval {
  id: string;
  jobId: string;
  flowId?: string;
  key?: string;
  owner: string;
  prompt: string;
  approvers?: string[];
  since: string;
  until?: string;
}

/** What waits for my decision: approval steps naming me, and mine naming nobody (GET /v1/approvals). */
export function Approvals() {
  const [items, setItems] = useState<Approval[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    api<{ items: Approval[] }>("GET", "/v1/approvals").then(
      (r) => (setItems(r.items), setError(null)),
      (err: Error) => setError(err.message),
    );
  useEffect(() => {
    void load();
    // Approvals appear as flows reach them: a light poll keeps the list current without a socket topic of its own.
    const timer = setInterval(() => void load(), 5_000);
    return () => clearInterval(timer);
  }, []);
  return html`<section aria-labelledby="h-approvals">
    <h1 id="h-approvals">Approvals</h1>
    <p class="hint">Steps waiting for your decision: those naming you as an approver, and yours that name nobody.</p>
    <${ErrorNote} error=${error} />
    ${items &&
    (items.length === 0
      ? html`<p class="empty">Nothing waits for your decision.</p>`
      : html`<ul class="approvals">
          ${items.map(
            (a) => html`<li key=${a.id} class="card approval" data-approval=${a.id}>
              <p class="prompt">${a.prompt}</p>
              <p class="hint">
                ${a.flowId && a.owner ? html`From <strong>${a.owner}</strong>${" · "}` : null}
                ${a.flowId && html`<a href=${href({ page: "flow", id: a.flowId })}>flow</a>${a.key ? html` step <code>${a.key}</code>` : null}${" · "}`}
                waiting since <time datetime=${a.since} title=${when(a.since)}>${ago(a.since)}</time>
                ${a.until && html`${" · "}times out ${when(a.until)}`}
                ${a.approvers && html`${" · "}approvers: ${a.approvers.join(", ")}`}
              </p>
              <${Decision} jobId=${a.id} onDecided=${() => setTimeout(() => void load(), 1_500)} />
            </li>`,
          )}
        </ul>`)}
  </section>`;
}
