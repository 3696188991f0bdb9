import { useState } from "preact/hooks";
import { html } from "../lib/html";
import { parseDataSearch } from "../lib/format";

export interface Filters {
  status?: string;
  name?: string;
  data?: string;
}

/** Status, name prefix and data containment; the data box is checked here before any request. */
export function FilterForm(props: { statuses: readonly string[]; value: Filters; onSearch: (f: Filters) => void; what: string }) {
  const [status, setStatus] = useState(props.value.status ?? "");
  const [name, setName] = useState(props.value.name ?? "");
  const [data, setData] = useState(props.value.data ?? "");
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    const parsed = parseDataSearch(data);
    if (!parsed.ok) return setProblem(parsed.message);
    setProblem(null);
    props.onSearch({ status: status || undefined, name: name.trim() || undefined, data: parsed.value });
  };
  return html`<form class="filters" role="search" aria-label=${`Search ${props.what}`} onSubmit=${submit}>
    <label>Status
      <select value=${status} onChange=${(e: Event) => setStatus((e.target as HTMLSelectElement).value)}>
        <option value="">any</option>
        ${props.statuses.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select>
    </label>
    <label>Name starts with
      <input type="search" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} maxlength="100" />
    </label>
    <label class="grow">Data contains (JSON)
      <input
        type="search"
        value=${data}
        placeholder='{"customer": 42}'
        aria-invalid=${problem ? "true" : "false"}
        aria-describedby=${problem ? "data-problem" : undefined}
        onInput=${(e: Event) => setData((e.target as HTMLInputElement).value)}
      />
    </label>
    <button type="submit" class="primary">Search</button>
    ${problem && html`<p id="data-problem" class="error-note" role="alert">${problem}</p>`}
  </form>`;
}
