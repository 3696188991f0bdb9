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
