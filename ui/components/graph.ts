import { memo } from "preact/compat";
import { useEffect, useRef } from "preact/hooks";
import { html } from "../lib/html";
import { NODE_H, NODE_W, type FlatJob, type Layout } from "../lib/tree";

/**
 * The flow's tree, laid out once (dagre); a status change re-renders only its node (memo on the
 * row object, which an event replaces). Nodes are buttons to the keyboard: Tab moves, Enter opens;
 * their name is their visible text (name and status), so what a screen reader says is what shows.
 */
const Node = memo(function Node(props: { job: FlatJob; x: number; y: number; selected: boolean; onSelect: (id: string) => void }) {
  const { job, x, y, selected } = props;
  const open = () => props.onSelect(job.id);
  const label = job.name.length > 18 ? job.name.slice(0, 17) + "…" : job.name;
  return html`<g
    class=${`node s-${job.status}${selected ? " selected" : ""}`}
    transform=${`translate(${x},${y})`}
    tabindex="0"
    role="button"
    aria-pressed=${selected ? "true" : "false"}
    data-job=${job.id}
    data-status=${job.status}
    onClick=${open}
    onKeyDown=${(e: KeyboardEvent) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open())}
  >
    <rect width=${NODE_W} height=${NODE_H} rx="6" />
    <text x="10" y="20" class="node-name">${label}</text>
    <text x="10" y="38" class="node-status">${job.status}${job.attemptsMade > 1 ? ` · ${job.attemptsMade} attempts` : ""}</text>
  </g>`;
});

export function FlowGraph(props: { layout: Layout; jobs: Map<string, FlatJob>; selected: string | null; onSelect: (id: string) => void }) {
  const { layout, jobs } = props;
  const box = useRef<HTMLDivElement>(null);
  // A wide tree centres its root: the top-left corner of a 1,000-job layout is one leaf among many.
  useEffect(() => {
    const el = box.current;
    const root = [...jobs.values()].find((j) => j.parentId === null);
    const pos = root && layout.nodes.get(root.id);
    if (el && pos) el.scrollLeft = Math.max(0, pos.x + NODE_W / 2 - el.clientWidth / 2);
  }, [layout]);
  return html`<div class="graph-scroll" role="group" aria-label="The flow's jobs as a tree" ref=${box}>
    <svg width=${layout.width} height=${layout.height} viewBox=${`0 0 ${layout.width} ${layout.height}`} class="graph">
      <g class="edges" aria-hidden="true">
        ${layout.edges.map(
          (e) => html`<polyline key=${`${e.from}-${e.to}`} points=${e.points.map((p) => `${p.x},${p.y}`).join(" ")} />`,
        )}
      </g>
      ${[...jobs.values()].map((j) => {
        const pos = layout.nodes.get(j.id);
        return pos ? html`<${Node} key=${j.id} job=${j} x=${pos.x} y=${pos.y} selected=${props.selected === j.id} onSelect=${props.onSelect} />` : null;
      })}
    </svg>
  </div>`;
}
