import { memo } from "preact/compat";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { html } from "../lib/html";
import { NODE_H, NODE_W, type FlatJob, type Layout } from "../lib/tree";
import { describeWait } from "../lib/waiting";

/**
 * The flow's tree, laid out once (a tidy tree, see layoutTree); a status change re-renders only its node (memo on the
 * row object, which an event replaces). Nodes are buttons to the keyboard: Tab moves, Enter opens;
 * their name is their visible text (name and status), so what a screen reader says is what shows.
 */
const Node = memo(function Node(props: { job: FlatJob; x: number; y: number; selected: boolean; onSelect: (id: string) => void }) {
  const { job, x, y, selected } = props;
  const open = () => props.onSelect(job.id);
  // A graph job is known by its key (its name is its handler's); a tree job by its name.
  const text = job.key ?? job.name;
  const label = text.length > 20 ? text.slice(0, 19) + "…" : text;
  // Why it waits, from its view and then live from job.updated events: a badge in place of the
  // status line (the colour still says the status), the whole sentence in its title (its accessible name).
  const wait = describeWait(job.waitingFor, job.status);
  const status = `${job.status}${job.attemptsMade > 1 ? ` · ${job.attemptsMade} attempts` : ""}`;
  return html`<g
    class=${`node s-${job.status}${wait ? ` waiting w-${wait.kind}` : ""}${selected ? " selected" : ""}`}
    transform=${`translate(${x},${y})`}
    tabindex="0"
    role="button"
    aria-pressed=${selected ? "true" : "false"}
    data-job=${job.id}
    data-status=${job.status}
    data-waiting=${wait ? job.waitingFor!.reason : undefined}
    onClick=${open}
    onKeyDown=${(e: KeyboardEvent) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open())}
  >
    <title>${job.key ? `${job.key} (${job.name})` : job.name}: ${status}${wait ? `. ${wait.sentence}` : ""}</title>
    <rect width=${NODE_W} height=${NODE_H} rx="6" />
    <text x="10" y="20" class="node-name">${label}</text>
    ${wait
      ? html`<rect class="wait-pill" x="6" y="26" width=${NODE_W - 12} height="17" rx="8.5" /><text x="12" y="38" class="node-wait">${wait.badge}</text>`
      : html`<text x="10" y="38" class="node-status">${status}</text>`}
  </g>`;
});

/**
 * Nodes drawn per task. A 1,000-job graph drawn at once was one 200+ ms main-thread task (DOM,
 * style, layout); in slices the page answers between them, and the nodes in view come first.
 */
const SLICE = 150;

export function FlowGraph(props: { layout: Layout; jobs: Map<string, FlatJob>; selected: string | null; onSelect: (id: string) => void }) {
  const { layout, jobs } = props;
  const box = useRef<HTMLDivElement>(null);
  const graph = useMemo(() => [...jobs.values()].some((j) => j.key !== undefined), [layout]);
  const rootPos = useMemo(() => {
    const root = [...jobs.values()].find((j) => j.parentId === null);
    return root ? layout.nodes.get(root.id) : undefined;
  }, [layout]);
  // Nearest the root's column first: the view opens centred on it.
  const order = useMemo(() => {
    const x = rootPos?.x ?? 0;
    return [...layout.nodes.entries()].sort((a, b) => Math.abs(a[1].x - x) - Math.abs(b[1].x - x)).map(([id]) => id);
  }, [layout]);
  // How far drawing got, for this order: another layout starts again from one slice.
  const [progress, setProgress] = useState({ order, count: SLICE });
  const count = progress.order === order ? progress.count : SLICE;
  useEffect(() => {
    if (count >= order.length) return;
    const next = setTimeout(() => setProgress({ order, count: count + SLICE }), 0);
    return () => clearTimeout(next);
  }, [count, order]);
  const drawn = useMemo(() => new Set(order.slice(0, count)), [order, count]);
  // A wide tree centres its root: the top-left corner of a 1,000-job layout is one leaf among many.
  useEffect(() => {
    const el = box.current;
    if (el && rootPos) el.scrollLeft = Math.max(0, rootPos.x + NODE_W / 2 - el.clientWidth / 2);
  }, [layout]);
  // Edges never change with a status: built once per slice, not on every batch of events.
  const edges = useMemo(
    () => html`<g class="edges" aria-hidden="true">
      ${layout.edges.map((e) =>
        drawn.has(e.to) && drawn.has(e.from)
          ? html`<polyline key=${`${e.from}-${e.to}`} class=${e.kind ?? undefined} data-from=${e.from} data-to=${e.to} points=${e.points.map((p) => `${p.x},${p.y}`).join(" ")} marker-end=${graph ? "url(#arrow)" : undefined} />`
          : null,
      )}
    </g>`,
    [layout, drawn],
  );
  // Drawn in tree order whatever the slice: the DOM order is the Tab order.
  return html`<div class="graph-scroll" role="group" aria-label=${graph ? "The flow's jobs as a graph, dependencies above their dependents" : "The flow's jobs as a tree"} ref=${box}>
    <svg
      width=${layout.width}
      height=${layout.height}
      viewBox=${`0 0 ${layout.width} ${layout.height}`}
      class="graph"
      data-drawn=${drawn.size >= layout.nodes.size ? "all" : "part"}
    >
      ${graph && html`<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrow-head" /></marker></defs>`}
      ${edges}
      ${[...jobs.values()].map((j) => {
        const pos = drawn.has(j.id) ? layout.nodes.get(j.id) : undefined;
        return pos ? html`<${Node} key=${j.id} job=${j} x=${pos.x} y=${pos.y} selected=${props.selected === j.id} onSelect=${props.onSelect} />` : null;
      })}
    </svg>
  </div>`;
}
