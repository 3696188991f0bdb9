/** One request a local task receiver got, as it arrived. */
export interface ReceivedCall {
  path: string;
  at: number;
  headers: Record<string, string>;
  body: string;
}

/** `delayMs`: hold the answer that long (a slow service, or one a test outlives). */
export type Answer = { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number };

/**
 * A local service for `http` tasks and webhooks: records every request (headers, raw body, arrival
 * time) and answers each path as `answer(path, n)` says, n counting that path's calls from 1.
 */
export function startTaskReceiver(answer: (path: string, n: number, call: ReceivedCall) => Answer = () => ({ status: 200, body: { ok: true } })) {
  const calls: ReceivedCall[] = [];
  const counts = new Map<string, number>();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const call = { path, at: Date.now(), headers: Object.fromEntries(req.headers), body: await req.text() };
      calls.push(call);
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const a = answer(path, n, call);
      if (a.delayMs) await Bun.sleep(a.delayMs);
      return new Response(a.body === undefined ? null : JSON.stringify(a.body), {
        status: a.status,
        headers: { ...(a.body === undefined ? {} : { "content-type": "application/json" }), ...a.headers },
      });
    },
  });
  return {
    calls,
    callsTo: (path: string) => calls.filter((c) => c.path === path),
    url: (path: string) => `http://127.0.0.1:${server.port}${path}`,
    stop: () => server.stop(true),
  };
}
