/** A local HTTP server that counts the requests each path gets: proof of how often a handler really ran. */
export function startCountingReceiver() {
  const hits = new Map<string, number>();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      return Response.json({ path });
    },
  });
  return { hits, port: server.port, url: (path: string) => `http://127.0.0.1:${server.port}${path}`, stop: () => server.stop(true) };
}

/** A local HTTP server that keeps the arrival time (ms) of every request: how fast a handler really ran. */
export function startTimingReceiver() {
  const times: number[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch() {
      times.push(performance.timeOrigin + performance.now());
      return Response.json({ ok: true });
    },
  });
  return { times, url: (path: string) => `http://127.0.0.1:${server.port}${path}`, stop: () => server.stop(true) };
}
