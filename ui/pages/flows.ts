import { api, query } from "../lib/api";
import { html } from "../lib/html";
import { useLiveTarget } from "../lib/context";
import { usePaged, type Page } from "../lib/paging";
import { FLOW_STATUSES, ago, when } from "../lib/format";
import { href } from "../lib/route";
import { flowStatusOf } from "../lib/tree";
import { ErrorNote, Pager, StatusBadge } from "../components/common";
import { FilterForm, type Filters } from "../components/filters";

interface FlowSummary {
  id: string;
  name: string;
  status: string;
  jobCount: number;
  createdAt: string;
  finishedAt: string | null;
}

const ALL = { all: true } as const;

/** Flows newest first; statuses change in place from the socket, a new flow reloads page one. */
export function Flows({ filters }: { filters: Filters }) {
  const key = JSON.stringify(filters);
  const paged = usePaged<FlowSummary>((cursor) => api<Page<FlowSummary>>("GET", `/v1/flows${query({ ...filters, limit: 20, cursor })}`), key);
  useLiveTarget(
    ALL,
    {
      load: async () => {},
      onEvents: (events) => {
        if (events.some((e) => e.event === "flow.created") && paged.index === 0) return paged.reload();
        const changes = new Map<string, string>();
        for (const e of events) {
          const s = flowStatusOf(e);
          if (s && e.flowId) changes.set(e.flowId, s);
        }
        if (changes.size && paged.page)
          paged.setPage({ ...paged.page, items: paged.page.items.map((f) => (changes.has(f.id) ? { ...f, status: changes.get(f.id)! } : f)) });
      },
    },
    [],
  );
  const search = (f: Filters) => (location.hash = href({ page: "flows", ...f }));
  return html`<section aria-labelledby="h-flows">
    <h1 id="h-flows">Flows</h1>
    <${FilterForm} statuses=${FLOW_STATUSES} value=${filters} onSearch=${search} what="flows" key=${key} />
    <${ErrorNote} error=${paged.error} />
    ${paged.page &&
    (paged.page.items.length === 0
      ? html`<p class="empty">No flows${filters.status || filters.name || filters.data ? " match this search" : " yet"}.</p>`
      : html`<table class="list">
          <caption class="sr-only">Flows, newest first</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Jobs</th><th scope="col">Created</th></tr></thead>
          <tbody>
            ${paged.page.items.map(
              (f) => html`<tr key=${f.id} data-flow=${f.id}>
                <td data-label="Name"><a href=${href({ page: "flow", id: f.id })}>${f.name}</a></td>
                <td data-label="Status"><${StatusBadge} status=${f.status} /></td>
                <td data-label="Jobs">${f.jobCount}</td>
                <td data-label="Created"><time datetime=${f.createdAt} title=${when(f.createdAt)}>${ago(f.createdAt)}</time></td>
              </tr>`,
            )}
          </tbody>
        </table>`)}
    <${Pager} page=${paged.index} hasNext=${!!paged.page?.nextCursor} onPrev=${paged.prev} onNext=${paged.next} />
  </section>`;
}
