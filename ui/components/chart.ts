import { html } from "../lib/html";

export interface MinutePoint {
  minute: string;
  completed: number;
  failed: number;
}

/** Completed and failed per minute as stacked bars; the figures are also in the label for screen readers. */
export function ThroughputChart({ points }: { points: MinutePoint[] }) {
  const W = 600;
  const H = 160;
  const pad = { l: 2, r: 2, t: 4, b: 2 };
  const max = Math.max(1, ...points.map((p) => p.completed + p.failed));
  const bw = (W - pad.l - pad.r) / Math.max(1, points.length);
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const total = points.reduce((a, p) => ({ c: a.c + p.completed, f: a.f + p.failed }), { c: 0, f: 0 });
  const label = `Jobs finished per minute over the last ${points.length} minutes: ${total.c} completed, ${total.f} failed; busiest minute ${max}.`;
  const first = points[0]?.minute;
  const time = (iso?: string) => (iso ? new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false }) : "");
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${label}>
      <line x1=${pad.l} x2=${W - pad.r} y1=${y(0)} y2=${y(0)} class="axis" />
      ${points.map((p, i) => {
        const x = pad.l + i * bw;
        const w = Math.max(1, bw - 1);
        return html`<g key=${p.minute}>
          ${p.completed > 0 && html`<rect class="bar-completed" x=${x} width=${w} y=${y(p.completed)} height=${y(0) - y(p.completed)} />`}
          ${p.failed > 0 &&
          html`<rect class="bar-failed" x=${x} width=${w} y=${y(p.completed + p.failed)} height=${y(p.completed) - y(p.completed + p.failed)} />`}
        </g>`;
      })}
    </svg>
    <div class="chart-axis" aria-hidden="true"><span>${time(first)}</span><span>busiest minute: ${max}</span><span>now</span></div>
    <figcaption>
      <span class="key key-completed" aria-hidden="true"></span> completed ${total.c}
      <span class="key key-failed" aria-hidden="true"></span> failed ${total.f}
    </figcaption>
  </figure>`;
}
