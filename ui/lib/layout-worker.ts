import { FULL_ORDER_LIMIT, layoutGraph, type GraphJob } from "./graph-layout";
import type { FlatJob, Layout } from "./tree";

/**
 * A big graph's layout off the page's main thread: dagre on 1,000 jobs and 3,000 edges is a
 * second or more of work, during which a page on the main thread could not scroll, click or
 * apply events. The worker is the dashboard's own bundle started again as a module worker
 * (`import.meta.url` is the bundle's address, so nothing more is built or served, and the
 * Content-Security-Policy's `worker-src 'self'` allows it); main.ts starts the app in a page and
 * `serveLayouts` in a worker. A browser that cannot start it lays out on the main thread.
 */
type Shape = Pick<GraphJob, "id" | "key" | "dependsOn" | "spawnedBy">;
type Request = { id: number; graph: Shape[] };
type Answer = { id: number; layout?: { width: number; height: number; nodes: [string, { x: number; y: number }][]; edges: Layout["edges"] }; error?: string };

/** Graphs at most this big (jobs plus edges) are laid out in the page: a few ms, and no flash of "laying out". */
export const OFF_THREAD_FROM = FULL_ORDER_LIMIT;

const run = (graph: Shape[]) => layoutGraph(new Map(graph.map((g) => [g.id, g as unknown as FlatJob])), graph as GraphJob[]);

/** In the worker: one layout per message, answered with the request's id. */
export function serveLayouts(scope: { onmessage: ((e: MessageEvent<Request>) => void) | null; postMessage(a: Answer): void }) {
  scope.onmessage = (e) => {
    const { id, graph } = e.data;
    try {
      const l = run(graph);
      scope.postMessage({ id, layout: { width: l.width, height: l.height, nodes: [...l.nodes], edges: l.edges } });
    } catch (err) {
      scope.postMessage({ id, error: String(err) });
    }
  };
}

let worker: Worker | null | undefined;
let next = 0;
const waiting = new Map<number, { resolve: (l: Layout) => void; graph: Shape[] }>();

function start(): Worker | null {
  try {
    const w = new Worker(import.meta.url, { type: "module", name: "flowd-layout" });
    w.onmessage = (e: MessageEvent<Answer>) => {
      const wait = waiting.get(e.data.id);
      if (!wait) return;
      waiting.delete(e.data.id);
      const l = e.data.layout;
      wait.resolve(l ? { width: l.width, height: l.height, nodes: new Map(l.nodes), edges: l.edges } : run(wait.graph));
    };
    // A worker that cannot load: everything it was asked is laid out here, and so is what comes next.
    w.onerror = (e) => {
      e.preventDefault();
      worker = null;
      for (const [id, wait] of waiting) (waiting.delete(id), wait.resolve(run(wait.graph)));
    };
    return w;
  } catch {
    return null;
  }
}

/** The graph's layout: in the page for a small graph, in the worker for a big one. */
export function layoutGraphOffThread(graph: GraphJob[]): Promise<Layout> {
  const shape = graph.map(({ id, key, dependsOn, spawnedBy }) => ({ id, key, dependsOn, ...(spawnedBy ? { spawnedBy } : {}) }));
  const size = graph.length + graph.reduce((n, g) => n + g.dependsOn.length, 0);
  if (size <= OFF_THREAD_FROM) return Promise.resolve(run(shape));
  if (worker === undefined) worker = start();
  if (!worker) return Promise.resolve(run(shape));
  const start0 = performance.now();
  const id = ++next;
  return new Promise<Layout>((resolve) => {
    waiting.set(id, { graph: shape, resolve: (l) => (performance.measure("flowd:layout", { start: start0 }), resolve(l)) });
    worker!.postMessage({ id, graph: shape } satisfies Request);
  });
}
