import { html } from "../lib/html";
import type { ApiError } from "../lib/api";

/** The API's own words for a refused form: its message, and each problem with the field it names. */
export function ApiProblems({ error }: { error: ApiError | null }) {
  if (!error) return null;
  // A problem that only repeats the message adds nothing.
  const details = (error.details ?? []).filter((d) => d && d.message !== error.message);
  return html`<div class="error-note" role="alert">
    <p>${error.message}</p>
    ${details.length
      ? html`<ul>${details.map((d, i) => html`<li key=${i}>${d.path ? html`<code>${d.path}</code>: ` : ""}${d.message ?? ""}</li>`)}</ul>`
      : null}
  </div>`;
}
