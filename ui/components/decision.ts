import { useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";

/**
 * Approve / Reject, with a comment, for a waiting approval step (POST /v1/jobs/:id/approve or
 * /reject). The server decides who may: a refusal (403 not an approver, 409 decided already) is
 * shown as it said it.
 */
export function Decision({ jobId, onDecided }: { jobId: string; onDecided?: (approved: boolean) => void }) {
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const decide = async (approved: boolean) => {
    setBusy(true);
    setError(null);
    try {
      await api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/${approved ? "approve" : "reject"}`, comment.trim() ? { comment: comment.trim() } : {});
      setDone(approved ? "Approved." : "Rejected.");
      onDecided?.(approved);
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  if (done) return html`<p class="decision-done" role="status">${done}</p>`;
  const inputId = `comment-${jobId}`;
  return html`<form class="decision" onSubmit=${(e: Event) => e.preventDefault()} data-decision=${jobId}>
    <label for=${inputId}>Comment <span class="hint">(optional)</span></label>
    <input id=${inputId} type="text" maxlength="2000" value=${comment} onInput=${(e: Event) => setComment((e.target as HTMLInputElement).value)} />
    <div class="actions">
      <button type="button" class="primary" disabled=${busy} onClick=${() => decide(true)}>Approve</button>
      <button type="button" class="danger" disabled=${busy} onClick=${() => decide(false)}>Reject</button>
    </div>
    ${error && html`<p class="error-note" role="alert">${error}</p>`}
  </form>`;
}
