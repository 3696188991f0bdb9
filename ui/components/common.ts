import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { html } from "../lib/html";
import { pretty } from "../lib/format";

export const StatusBadge = ({ status }: { status: string }) => html`<span class=${`badge s-${status}`}>${status}</span>`;

export const Json = ({ value, label }: { value: unknown; label: string }) =>
  html`<pre class="json" tabindex="0" aria-label=${label}>${pretty(value)}</pre>`;

export const ErrorNote = ({ error }: { error: { message: string } | string | null | undefined }) =>
  error ? html`<p class="error-note" role="alert">${typeof error === "string" ? error : error.message}</p>` : null;

/** A confirmation in a modal <dialog>: focus stays inside, Escape cancels, the browser handles both. */
export function Confirm(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-title" onCancel=${(e: Event) => (e.preventDefault(), props.onCancel())}>
    <h2 id="confirm-title">${props.title}</h2>
    <div>${props.children}</div>
    <div class="actions">
      <button type="button" onClick=${props.onCancel}>Not now</button>
      <button type="button" class=${props.danger ? "danger" : "primary"} onClick=${props.onConfirm}>${props.confirmLabel}</button>
    </div>
  </dialog>`;
}

/** Previous/next over keyset pages: the cursors seen so far are kept, so "previous" needs no offset. */
export function Pager(props: { page: number; hasNext: boolean; onPrev: () => void; onNext: () => void }) {
  if (props.page === 0 && !props.hasNext) return null;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${props.page === 0} onClick=${props.onPrev}>Previous</button>
    <span>Page ${props.page + 1}</span>
    <button type="button" disabled=${!props.hasNext} onClick=${props.onNext}>Next</button>
  </nav>`;
}
