import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { usePaged, type Page } from "../lib/paging";
import { when } from "../lib/format";
import { href } from "../lib/route";
import { sideBySide } from "../lib/json-diff";
import { buildInput, fieldsOf, initialValue, type Field } from "../lib/schema-form";
import { ErrorNote, Json, Pager, StatusBadge } from "../components/common";
import { ApiProblems } from "../components/field-errors";

interface Summary {
  name: string;
  latestVersion: number;
  createdAt: string;
  updatedAt: string;
}
interface Version {
  name: string;
  version: number;
  description: string | null;
  input: unknown;
  flow: unknown;
  createdAt: string;
}
interface DefinitionView extends Summary {
  latest: Version;
  versions: { version: number; description: string | null; createdAt: string }[];
}
interface Published {
  id: string;
  eventKey: string;
  topic: string;
  payload: unknown;
  matched: { triggerId: string; definition: string; version: number | null }[];
  createdAt: string;
}
interface FlowSummary {
  id: string;
  name: string;
  status: string;
  createdAt: string;
  definition?: { name: string; version: number };
}

/** Definitions by name (GET /v1/definitions), and the events published to their triggers. */
export function Definitions({ event }: { event?: string }) {
  const paged = usePaged<Summary>((cursor) => api<Page<Summary>>("GET", `/v1/definitions${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`), "");
  return html`<section aria-labelledby="h-definitions">
    <h1 id="h-definitions">Definitions</h1>
    <p class="hint">Flows stored by name with PUT /v1/definitions/:name, each change a new version; run one with an input from its page.</p>
    <${ErrorNote} error=${paged.error} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No definitions yet.</p>`
      : html`<table class="list">
          <caption class="sr-only">Definitions</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Latest version</th><th scope="col">Changed</th><th scope="col">Created</th></tr></thead>
          <tbody>
            ${paged.page.items.map(
              (d) => html`<tr key=${d.name} data-definition=${d.name}>
                <td data-label="Name"><a href=${href({ page: "definition", name: d.name })}>${d.name}</a></td>
                <td data-label="Latest version">${d.latestVersion}</td>
                <td data-label="Changed">${when(d.updatedAt)}</td>
                <td data-label="Created">${when(d.createdAt)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />
    <${PublishedEvents} highlight=${event} />
  </section>`;
}

/** Published events, newest first, with the triggers each matched; a flow's event link lands on its row. */
function PublishedEvents({ highlight }: { highlight?: string }) {
  const paged = usePaged<Published>((cursor) => api<Page<Published>>("GET", `/v1/published${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`), "");
  useEffect(() => {
    if (highlight && paged.page) document.getElementById(`event-${highlight}`)?.scrollIntoView({ block: "center" });
  }, [highlight, paged.page]);
  return html`<h2 id="h-published">Published events</h2>
    <${ErrorNote} error=${paged.error} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No events published yet (POST /v1/publish).</p>`
      : html`<table class="list" aria-labelledby="h-published">
          <thead><tr><th scope="col">Topic</th><th scope="col">Id</th><th scope="col">Triggers matched</th><th scope="col">Payload</th><th scope="col">When</th></tr></thead>
          <tbody>
            ${paged.page.items.map(
              (e) => html`<tr key=${e.id} id=${`event-${e.id}`} class=${e.id === highlight ? "highlight" : ""} aria-current=${e.id === highlight ? "true" : undefined}>
                <td data-label="Topic"><code>${e.topic}</code></td>
                <td data-label="Id"><code>${e.eventKey}</code></td>
                <td data-label="Triggers matched">
                  ${e.matched.length === 0
                    ? "none"
                    : e.matched.map(
                        (m, i) => html`${i ? ", " : ""}<a href=${href({ page: "definition", name: m.definition, version: m.version ? String(m.version) : undefined })}>${m.definition}${m.version ? ` v${m.version}` : ""}</a>`,
                      )}
                </td>
                <td data-label="Payload"><code class="clip">${JSON.stringify(e.payload)}</code></td>
                <td data-label="When">${when(e.createdAt)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />`;
}

/**
 * One definition: its versions, two of them side by side as a JSON diff (the older on the left),
 * a Run form from the chosen version's input schema, and its latest runs. `version` (from the
 * address, e.g. a flow's link) is the version shown and run; the diff compares it with the one before.
 */
export function Definition({ name, version }: { name: string; version?: string }) {
  const [def, setDef] = useState<DefinitionView | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [versions, setVersions] = useState<Map<number, Version>>(new Map());
  const [pair, setPair] = useState<[number, number] | null>(null);
  const [runs, setRuns] = useState<FlowSummary[] | null>(null);

  const enc = encodeURIComponent(name);
  useEffect(() => {
    api<DefinitionView>("GET", `/v1/definitions/${enc}`)
      .then((d) => {
        setDef(d);
        setVersions(new Map([[d.latest.version, d.latest]]));
      })
      .catch((e) => setError(e as ApiError));
    api<Page<FlowSummary>>("GET", `/v1/flows?definition=${enc}&limit=10`)
      .then((p) => setRuns(p.items))
      .catch(() => setRuns([]));
  }, [name]);

  // The version in the address (a flow's link, a row of the table) beside the one before it.
  useEffect(() => {
    if (!def) return;
    const picked = Number(version);
    const right = Number.isInteger(picked) && def.versions.some((v) => v.version === picked) ? picked : def.latestVersion;
    const before = def.versions.map((v) => v.version).filter((v) => v < right);
    setPair([before.length ? Math.max(...before) : right, right]);
  }, [def, version]);

  // Each version read once, as the comparison or the run form needs it.
  useEffect(() => {
    if (!pair) return;
    for (const v of new Set(pair))
      if (!versions.has(v))
        api<Version>("GET", `/v1/definitions/${enc}/versions/${v}`)
          .then((got) => setVersions((m) => new Map(m).set(v, got)))
          .catch((e) => setError(e as ApiError));
  }, [pair?.[0], pair?.[1]]);

  if (error)
    return html`<section aria-labelledby="h-definition">
      <h1 id="h-definition">${error.status === 404 ? "Definition not found" : "Could not load the definition"}</h1>
      <p>${error.status === 404 ? `No definition named ${name} exists for you.` : error.message}</p>
      <p><a href=${href({ page: "definitions" })}>Back to definitions</a></p>
    </section>`;
  if (!def || !pair) return html`<section><h1>Definition</h1><p aria-busy="true">Loading…</p></section>`;
  const [left, right] = pair;
  const shown = versions.get(right);
  const numbers = def.versions.map((v) => v.version).sort((a, b) => b - a);
  const pick = (side: 0 | 1) => (e: Event) => {
    const v = Number((e.target as HTMLSelectElement).value);
    setPair(side === 0 ? [v, right] : [left, v]);
  };
  return html`<section aria-labelledby="h-definition" class="definition-page">
    <p class="crumbs"><a href=${href({ page: "definitions" })}>Definitions</a> /</p>
    <h1 id="h-definition">${def.name} <span class="badge">v${def.latestVersion}</span></h1>
    ${def.latest.description && html`<p>${def.latest.description}</p>`}
    <h2>Versions</h2>
    <table class="list">
      <caption class="sr-only">Versions</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Description</th><th scope="col">Stored</th></tr></thead>
      <tbody>
        ${[...def.versions].sort((a, b) => b.version - a.version).map(
          (v) => html`<tr key=${v.version} data-version=${v.version} class=${v.version === right ? "highlight" : ""}>
            <td data-label="Version"><a href=${href({ page: "definition", name: def.name, version: String(v.version) })}>v${v.version}</a></td>
            <td data-label="Description">${v.description ?? "–"}</td>
            <td data-label="Stored">${when(v.createdAt)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <h2 id="h-compare">Compare versions</h2>
    <div class="compare-pick" role="group" aria-labelledby="h-compare">
      <label>Older <select onChange=${pick(0)} value=${left}>${numbers.map((n) => html`<option value=${n}>v${n}</option>`)}</select></label>
      <label>Newer <select onChange=${pick(1)} value=${right}>${numbers.map((n) => html`<option value=${n}>v${n}</option>`)}</select></label>
    </div>
    <${VersionDiff} older=${versions.get(left)} newer=${versions.get(right)} />
    ${shown ? html`<${RunForm} key=${`${def.name}@${right}`} definition=${def.name} version=${shown} />` : html`<p aria-busy="true">Loading version ${right}…</p>`}
    <h2>Latest runs</h2>
    ${runs === null
      ? html`<p aria-busy="true">Loading…</p>`
      : runs.length === 0
        ? html`<p class="empty">No runs yet.</p>`
        : html`<ul class="runs">
            ${runs.map(
              (f) => html`<li key=${f.id}><a href=${href({ page: "flow", id: f.id })}>${f.name}</a> <${StatusBadge} status=${f.status} />
                ${f.definition ? ` v${f.definition.version}` : ""} · ${when(f.createdAt)}</li>`,
            )}
          </ul>`}
  </section>`;
}

/** What a version stores (description, input schema, flow) beside another's, line by line. */
function VersionDiff({ older, newer }: { older?: Version; newer?: Version }) {
  const body = (v: Version) => ({ description: v.description, input: v.input, flow: v.flow });
  const rows = useMemo(() => (older && newer ? sideBySide(body(older), body(newer)) : null), [older, newer]);
  if (!older || !newer || !rows) return html`<p aria-busy="true">Loading the versions…</p>`;
  const changed = rows.filter((r) => r.kind !== "same").length;
  // Scrolls on its own (a long flow), so it takes focus: the keyboard can scroll it too.
  return html`<div class="diff-wrap" tabindex="0" role="region" aria-label="Differences between the two versions">
    <p class="hint" role="status">${older.version === newer.version ? `Version ${newer.version} alone (no older version to compare).` : changed === 0 ? "The two versions are the same." : `${changed} line${changed === 1 ? "" : "s"} differ between v${older.version} and v${newer.version}.`}</p>
    <table class="diff" aria-label=${`Version ${older.version} beside version ${newer.version}`}>
      <thead><tr><th scope="col">v${older.version}</th><th scope="col">v${newer.version}</th></tr></thead>
      <tbody>
        ${rows.map(
          (r, i) => html`<tr key=${i} class=${`d-${r.kind}`}>
            <td class=${r.left === null ? "gap" : r.kind === "same" ? "" : "del"}>${r.left !== null && html`<span class="sr-only">${r.kind === "same" ? "" : "removed: "}</span>`}${r.left ?? ""}</td>
            <td class=${r.right === null ? "gap" : r.kind === "same" ? "" : "ins"}>${r.right !== null && html`<span class="sr-only">${r.kind === "same" ? "" : "added: "}</span>`}${r.right ?? ""}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/** Run a version: a field per simple property of its input schema, JSON for the rest; the new flow opens on success. */
function RunForm({ definition, version }: { definition: string; version: Version }) {
  const fields = useMemo(() => fieldsOf(version.input), [version]);
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries((fields ?? []).map((f) => [f.name, initialValue(f)])));
  const [whole, setWhole] = useState("{}");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let input: unknown;
    if (fields) {
      const built = buildInput(fields, values);
      if (!built.ok) return setError(new ApiError(400, "invalid_input", built.message, [{ path: `/input/${built.field}`, message: built.message }]));
      input = built.input;
    } else {
      try {
        input = JSON.parse(whole || "{}");
      } catch {
        return setError(new ApiError(400, "invalid_json", "The input is not valid JSON."));
      }
    }
    setBusy(true);
    try {
      const flow = await api<{ id: string }>("POST", `/v1/definitions/${encodeURIComponent(definition)}/runs`, { input, version: version.version });
      location.hash = href({ page: "flow", id: flow.id });
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const set = (name: string) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setValues({ ...values, [name]: t.type === "checkbox" ? String(t.checked) : t.value });
  };
  const field = (f: Field) => {
    const id = `run-${f.name}`;
    // One element, so the form's grid keeps the name and its mark on one line.
    const label = html`<span>${f.name}${f.required ? html` <span aria-hidden="true">*</span><span class="sr-only">(required)</span>` : " (optional)"}</span>`;
    const help = f.description ? html`<span class="hint" id=${`${id}-help`}>${f.description}</span>` : null;
    const described = f.description ? `${id}-help` : undefined;
    if (f.kind === "boolean")
      return html`<label key=${f.name} class="check"><input id=${id} type="checkbox" checked=${values[f.name] === "true"} onChange=${set(f.name)} aria-describedby=${described} /> ${label} ${help}</label>`;
    if (f.kind === "enum")
      return html`<label key=${f.name}>${label}
        <select id=${id} value=${values[f.name]} onChange=${set(f.name)} required=${f.required} aria-describedby=${described}>
          ${!f.required && html`<option value="">–</option>`}
          ${f.options.map((o) => html`<option value=${String(o)}>${String(o)}</option>`)}
        </select>${help}</label>`;
    if (f.kind === "json")
      return html`<label key=${f.name}>${label} (JSON)
        <textarea id=${id} rows="3" value=${values[f.name]} onInput=${set(f.name)} required=${f.required} aria-describedby=${described}></textarea>${help}</label>`;
    return html`<label key=${f.name}>${label}
      <input id=${id} type=${f.kind === "string" ? "text" : "number"} step=${f.kind === "integer" ? "1" : "any"} value=${values[f.name]} onInput=${set(f.name)}
        required=${f.required} aria-describedby=${described} />${help}</label>`;
  };
  return html`<form class="card form run-form" onSubmit=${submit} aria-labelledby="h-run" data-run-version=${version.version}>
    <h2 id="h-run">Run version ${version.version}</h2>
    ${fields && fields.some((f) => f.required) && html`<p class="hint">Fields marked * are required.</p>`}
    ${fields === null
      ? html`<label>Input (JSON)<textarea rows="5" value=${whole} onInput=${(e: Event) => setWhole((e.target as HTMLTextAreaElement).value)}></textarea></label>
          ${version.input !== null && html`<details><summary>Input schema</summary><${Json} value=${version.input} label="Input schema" /></details>`}`
      : fields.length === 0
        ? html`<p class="hint">This version takes no input fields.</p>`
        : fields.map(field)}
    <${ApiProblems} error=${error} />
    <button type="submit" class="primary" disabled=${busy}>Run</button>
  </form>`;
}
