import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { useLiveTarget } from "../lib/context";
import { isFinished, when } from "../lib/format";
import { href } from "../lib/route";
import { applyJobEvent, flatten, flowStatusOf, layoutTree, statusCounts, type FlatJob, type FlowView, type Layout } from "../lib/tree";
import type { LiveEvent } from "../lib/live";
import { Confirm, ErrorNote, Json, StatusBadge } from "../components/common";
import { FlowGraph } from "../components/graph";
import { flattenGraph, layoutGraph, type GraphJob } from "../lib/graph-layout";
import { layoutGraphOffThread, OFF_THREAD_FROM } from "../lib/layout-worker";
import { JobPanel } from "../components/job-panel";

interface Loaded {
  flow: Omit<FlowView, "root" | "jobs">;
  jobs: Map<string, FlatJob>;
  /** Null while a big graph is laid out in the layout worker (then `graph` is what it lays out). */
  layout: Layout | null;
  graph?: GraphJob[];
  rootId: string;
  /** Bumped on every change, so a render sees a new value while the Map itself is reused. */
  version: number;
}

function loaded(view: FlowView, prev: Loaded | null): Loaded {
  const { root, jobs: graph, ...flow } = view;
  if (!root) {
    // A graph flow: its jobs by layer, dependencies drawn as edges.
    const jobs = flattenGraph(graph ?? []);
    // Statuses do not move a node: the layout is kept while the jobs are the same ones (a retry's
    // jobs have new ids, a job may add jobs while it runs).
    const same = !!prev && prev.jobs.size === jobs.size && [...jobs.keys()].every((k) => prev.jobs.has(k));
    if (same && prev.rootId === "") return { flow, jobs, layout: prev.layout, graph: prev.graph, rootId: "", version: prev.version + 1 };
    // A big graph is laid out off the main thread (the page draws it when the worker answers); a small one at once.
    const all = graph ?? [];
    const small = all.length + all.reduce((n, g) => n + g.dependsOn.length, 0) <= OFF_THREAD_FROM;
    return { flow, jobs, layout: small ? layoutGraph(jobs, all) : null, graph: all, rootId: "", version: (prev?.version ?? 0) + 1 };
  }
  const jobs = flatten(root);
  // The tree never changes shape after creation, so a reload keeps the layout it had.
  const layout = prev?.layout && prev.jobs.size === jobs.size ? prev.layout : layoutTree(jobs);
  return { flow, jobs, layout, rootId: root.id, version: (prev?.version ?? 0) + 1 };
}

/** Events in seq order over what the page shows; the row Map is updated in place, rows replaced. */
function applyEvents(prev: Loaded, events: LiveEvent[]): Loaded {
  let status = prev.flow.status;
  let changed = false;
  for (const e of events) {
    if (applyJobEvent(prev.jobs, e)) changed = true;
    const s = flowStatusOf(e);
    if (s) (status = s), (changed = true);
  }
  if (!changed) return prev;
  // A retry re-opens the flow: once its root runs again, so does the flow.
  const root = prev.jobs.get(prev.rootId);
  if (root && !isFinished(root.status)) status = "running";
  const at = events[events.length - 1]!.at;
  return { ...prev, flow: { ...prev.flow, status, updatedAt: at }, version: prev.version + 1 };
}

/**
 * A graph job's place in the flow: the jobs it depends on, each with its status and the result it
 * hands over, and the jobs that depend on it. Each is a button that opens that job's panel.
 */
function Dependencies({ job, jobs, onSelect }: { job: FlatJob; jobs: Map<string, FlatJob>; onSelect: (id: string) => void }) {
  const byKey = new Map([...jobs.values()].map((j) => [j.key, j]));
  const deps = (job.dependsOn ?? []).flatMap((k) => byKey.get(k) ?? []);
  const dependents = [...jobs.values()].filter((j) => j.dependsOn?.includes(job.key!));
  const spawner = job.spawnedBy ? byKey.get(job.spawnedBy) : undefined;
  const added = [...jobs.values()].filter((j) => j.spawnedBy === job.key);
  const link = (j: FlatJob) =>
    html`<button type="button" class="link" onClick=${() => onSelect(j.id)} data-dep=${j.key}>${j.key}</button> <${StatusBadge} status=${j.status} />`;
  return html`<section class="deps" aria-label="Dependencies">
    <h4>Depends on${deps.length ? ` (${deps.length})` : ""}</h4>
    ${deps.length === 0
      ? html`<p class="hint">Nothing: it runs as soon as the flow starts.</p>`
      : html`<ul class="dep-list">
          ${deps.map(
            (d) => html`<li key=${d.id} data-dependency=${d.key}>
              ${link(d)}
              ${d.status === "completed"
                ? html`<${Json} value=${d.result} label=${`Result of ${d.key}`} />`
                : html`<p class="hint">${isFinished(d.status) ? "No result: it did not complete." : "No result yet."}</p>`}
            </li>`,
          )}
        </ul>`}
    ${spawner && html`<h4>Added by</h4><p data-spawned-by=${spawner.key}>${link(spawner)} while it ran</p>`}
    ${added.length > 0 &&
    html`<h4>Added while it ran (${added.length})</h4>
      <ul class="dep-list inline" data-added>${added.map((d) => html`<li key=${d.id}>${link(d)}</li>`)}</ul>`}
    <h4>Needed by${dependents.length ? ` (${dependents.length})` : ""}</h4>
    ${dependents.length === 0
      ? html`<p class="hint">No job: the flow ends with it.</p>`
      : html`<ul class="dep-list inline">${dependents.map((d) => html`<li key=${d.id}>${link(d)}</li>`)}</ul>`}
  </section>`;
}

type Action = "cancel" | "retry" | "delete";
const ACTIONS: Record<Action, { title: string; label: string; text: string }> = {
  cancel: { title: "Cancel this flow?", label: "Cancel flow", text: "Every unfinished job is cancelled; running ones are stopped." },
  retry: { title: "Retry this flow?", label: "Retry flow", text: "Failed and cancelled jobs run again; completed results are kept." },
  delete: { title: "Delete this flow?", label: "Delete flow", text: "The flow and all its jobs are removed for good." },
};

/**
 * One flow: loaded once over HTTP when its subscription is in place, then kept current by the
 * socket alone (job.updated per job, flow.* for the whole). A retry or cancel answers with the
 * flow, which replaces what the page shows.
 */
export function Flow({ id }: { id: string }) {
  const [state, setState] = useState<Loaded | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [asking, setAsking] = useState<Action | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  // From the newest state, not the last rendered one: events may have been applied since.
  const show = (view: FlowView) => setState((prev) => loaded(view, prev));

  const current = useRef<Loaded | null>(null);
  current.current = state;

  // Snapshots (this load, a reload for a job the page has not seen, an action's answer) never
  // overlap, and the events that arrive during one are applied after it (useLiveTarget): a GET
  // started before some events can never land after them and undo them.
  const live = useLiveTarget(
    { flowId: id },
    {
      load: async () => {
        try {
          // Measured under its own name, so a bench can tell the fetch and parse from the layout and drawing.
          const start = performance.now();
          const view = await api<FlowView>("GET", `/v1/flows/${encodeURIComponent(id)}`);
          performance.measure("flowd:fetch", { start });
          show(view);
          setError(null);
        } catch (e) {
          // A reload that fails (a job added while it ran, a reconnect) keeps what the page shows,
          // as before; a flow gone, or a first load that fails, is said.
          if (!current.current || (e as ApiError).status === 404) setError(e as ApiError);
        }
      },
      onEvents: (events) => {
        setState((prev) => (prev ? applyEvents(prev, events) : prev));
        // A graph grows while it runs (a job adds jobs): an event about a job the page has not seen loads the flow again.
        const now = current.current;
        if (now && now.rootId === "" && events.some((e) => e.jobId && e.event.startsWith("job.") && !now.jobs.has(e.jobId))) void live.reload();
      },
    },
    [id],
  );

  // A big graph's layout, from the worker: kept only if the page still shows those jobs.
  const pendingGraph = state && state.layout === null ? state.graph : undefined;
  useEffect(() => {
    if (!pendingGraph) return;
    let gone = false;
    void layoutGraphOffThread(pendingGraph).then((layout) => {
      if (!gone) setState((p) => (p && p.layout === null && p.graph === pendingGraph ? { ...p, layout, version: p.version + 1 } : p));
    });
    return () => {
      gone = true;
    };
  }, [pendingGraph]);

  const counts = useMemo(() => (state ? statusCounts(state.jobs.values()) : {}), [state?.version]);

  const act = async (action: Action) => {
    setAsking(null);
    setBusy(true);
    setActionError(null);
    try {
      if (action === "delete") {
        await api("DELETE", `/v1/flows/${encodeURIComponent(id)}`);
        location.hash = href({ page: "flows" });
        return;
      }
      // A retried job can finish before the answer arrives: the answer, then every event since the
      // request went out, in order (held meanwhile), so the last word on each job is the newest.
      await live.exclusive(async () => show(await api<FlowView>("POST", `/v1/flows/${encodeURIComponent(id)}/${action}`)));
    } catch (e) {
      setActionError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  if (error)
    return html`<section aria-labelledby="h-flow">
      <h1 id="h-flow">${error.status === 404 ? "Flow not found" : "Could not load the flow"}</h1>
      <p>${error.status === 404 ? `No flow with id ${id} exists for you.` : error.message}</p>
      <p><a href=${href({ page: "flows" })}>Back to flows</a></p>
    </section>`;
  if (!state) return html`<section><h1>Flow</h1><p aria-busy="true">Loading…</p></section>`;
  const { flow, jobs, layout } = state;
  const running = flow.status === "running";
  const job = selected ? jobs.get(selected) : undefined;
  const done = (counts.completed ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
  return html`<section aria-labelledby="h-flow" class="flow-page">
    <p class="crumbs"><a href=${href({ page: "flows" })}>Flows</a> /</p>
    <h1 id="h-flow">${flow.name} <span data-flow-status=${flow.status}><${StatusBadge} status=${flow.status} /></span></h1>
    <dl class="facts">
      <div><dt>Id</dt><dd><code>${flow.id}</code></dd></div>
      ${flow.definition &&
      html`<div><dt>Definition</dt><dd><a href=${href({ page: "definition", name: flow.definition.name, version: String(flow.definition.version) })} data-link="definition">${flow.definition.name} v${flow.definition.version}</a></dd></div>`}
      ${flow.scheduleId && html`<div><dt>Started by</dt><dd><a href=${href({ page: "schedules" })} data-link="schedule">schedule <code>${flow.scheduleId}</code></a></dd></div>`}
      ${flow.eventId && html`<div><dt>Started by</dt><dd><a href=${href({ page: "definitions", event: flow.eventId })} data-link="event">published event <code>${flow.eventId}</code></a></dd></div>`}
      <div><dt>Created</dt><dd>${when(flow.createdAt)}</dd></div>
      <div><dt>Finished</dt><dd>${isFinished(flow.status) ? when(flow.finishedAt ?? flow.updatedAt) : "–"}</dd></div>
      <div class="wide"><dt>Progress</dt><dd>
        <progress max=${jobs.size} value=${done} aria-label="Jobs finished">${done}/${jobs.size}</progress>
        ${" "}${done}/${jobs.size} done${counts.failed ? `, ${counts.failed} failed` : ""}
      </dd></div>
    </dl>
    <div class="actions" role="group" aria-label="Flow actions">
      <button type="button" disabled=${!running || busy} onClick=${() => setAsking("cancel")}>Cancel</button>
      <button type="button" disabled=${running || flow.status === "completed" || busy} onClick=${() => setAsking("retry")}>Retry</button>
      <button type="button" class="danger" disabled=${running || busy} onClick=${() => setAsking("delete")}>Delete</button>
    </div>
    <${ErrorNote} error=${actionError} />
    <${Confirm}
      open=${asking !== null}
      title=${asking ? ACTIONS[asking].title : ""}
      confirmLabel=${asking ? ACTIONS[asking].label : ""}
      danger=${asking === "delete" || asking === "cancel"}
      onConfirm=${() => asking && act(asking)}
      onCancel=${() => setAsking(null)}
    >${asking ? ACTIONS[asking].text : ""}</${Confirm}>
    <div class="flow-body">
      ${layout
        ? html`<${FlowGraph} layout=${layout} jobs=${jobs} selected=${selected} onSelect=${setSelected} version=${state.version} />`
        : html`<div class="graph-scroll graph-pending" aria-busy="true"><p class="hint">Laying out ${jobs.size.toLocaleString("en")} jobs…</p></div>`}
      ${job
        ? html`<${JobPanel} job=${job} onClose=${() => setSelected(null)}>
            ${job.key !== undefined && html`<${Dependencies} job=${job} jobs=${jobs} onSelect=${setSelected} />`}
          </${JobPanel}>`
        : html`<p class="hint">Select a job to see its data, result and error${state.rootId === "" ? ", and the results of the jobs it depends on" : ""}.</p>`}
    </div>
  </section>`;
}
