import { useRef, useState } from "preact/hooks";
import { api, ApiError } from "../lib/api";
import { html } from "../lib/html";
import { useLiveTarget } from "../lib/context";
import { FLOW_STATUSES, JOB_STATUSES, timing } from "../lib/format";
import { ThroughputChart, type MinutePoint } from "../components/chart";
import { ErrorNote, StatusBadge } from "../components/common";

interface Percentiles {
  p50: number | null;
  p95: number | null;
}
interface HandlerStats {
  handler: string;
  completed: number;
  failed: number;
  runMs: Percentiles;
  waitMs: Percentiles;
}
interface Stats {
  flows: Record<string, number>;
  jobs: Record<string, number>;
  perMinute: MinutePoint[];
  handlers: HandlerStats[];
}

const ALL = { all: true } as const;

/**
 * Counts by status and the last hour per minute. Events say that something changed, not the new
 * counts, so an event asks /v1/stats again, at most once every two seconds: driven by the socket,
 * never by a timer while nothing happens.
 */
export function Overview() {
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const load = async () => {
    try {
      setStats(await api<Stats>("GET", "/v1/stats?window=1h"));
      setError(null);
    } catch (e) {
      setError(e as ApiError);
    }
    last.current = Date.now();
  };
  useLiveTarget(
    ALL,
    {
      load,
      onEvents: () => {
        if (timer.current) return;
        const wait = Math.max(0, last.current + 2000 - Date.now());
        timer.current = setTimeout(() => {
          timer.current = null;
          void load();
        }, wait);
      },
    },
    [],
  );
  return html`<section aria-labelledby="h-overview">
    <h1 id="h-overview">Overview</h1>
    <${ErrorNote} error=${error} />
    ${!stats && !error && html`<p aria-busy="true">Loading…</p>`}
    ${stats &&
    html`<div class="cards">
        <section class="card" aria-labelledby="h-flows-count">
          <h2 id="h-flows-count">Flows</h2>
          <dl class="counts">
            ${FLOW_STATUSES.map(
              (s) => html`<div key=${s}><dt><${StatusBadge} status=${s} /></dt><dd data-count=${`flows-${s}`}>${stats.flows[s] ?? 0}</dd></div>`,
            )}
          </dl>
        </section>
        <section class="card" aria-labelledby="h-jobs-count">
          <h2 id="h-jobs-count">Jobs</h2>
          <dl class="counts">
            ${JOB_STATUSES.map((s) => html`<div key=${s}><dt><${StatusBadge} status=${s} /></dt><dd data-count=${`jobs-${s}`}>${stats.jobs[s] ?? 0}</dd></div>`)}
          </dl>
        </section>
      </div>
      <section class="card" aria-labelledby="h-throughput">
        <h2 id="h-throughput">Finished per minute, last hour</h2>
        <${ThroughputChart} points=${stats.perMinute} />
      </section>
      <${HandlerTimings} handlers=${stats.handlers} />`}
  </section>`;
}

/** Per handler, the jobs finished in the last hour with their run time and wait percentiles. */
function HandlerTimings({ handlers }: { handlers: HandlerStats[] }) {
  return html`<section class="card" aria-labelledby="h-handler-times">
    <h2 id="h-handler-times">Run time and wait by handler, last hour</h2>
    ${handlers.length === 0
      ? html`<p class="empty">No job finished in the last hour.</p>`
      : html`<table class="list">
          <caption class="sr-only">Jobs finished in the last hour by handler, with median (p50) and p95 run time and wait</caption>
          <thead>
            <tr>
              <th scope="col">Handler</th><th scope="col">Completed</th><th scope="col">Failed</th>
              <th scope="col">Run p50</th><th scope="col">Run p95</th><th scope="col">Wait p50</th><th scope="col">Wait p95</th>
            </tr>
          </thead>
          <tbody>
            ${handlers.map(
              (h) => html`<tr key=${h.handler} data-handler-times=${h.handler}>
                <td data-label="Handler"><strong>${h.handler}</strong></td>
                <td data-label="Completed">${h.completed}</td>
                <td data-label="Failed">${h.failed}</td>
                <td data-label="Run p50">${timing(h.runMs.p50)}</td>
                <td data-label="Run p95">${timing(h.runMs.p95)}</td>
                <td data-label="Wait p50">${timing(h.waitMs.p50)}</td>
                <td data-label="Wait p95">${timing(h.waitMs.p95)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
  </section>`;
}
