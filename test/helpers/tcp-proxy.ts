import net from "node:net";

/**
 * A TCP proxy in front of a server, with one fault: `freeze(match)` makes the open connections whose
 * client sent `match` (e.g. a Redis connection name) go silent both ways without closing — what a
 * dropped NAT entry or a half-open socket does to a long-lived connection. New connections work.
 * `cut()` resets every connection and refuses new ones until `restore()`: the server is down.
 */
export async function startFreezableProxy(target: { host: string; port: number }) {
  const links: { sent: string; frozen: boolean; client: net.Socket; upstream: net.Socket }[] = [];
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.resetAndDestroy();
    const upstream = net.connect(target.port, target.host);
    const link = { sent: "", frozen: false, client, upstream };
    links.push(link);
    client.on("data", (chunk) => {
      if (link.sent.length < 4096) link.sent += chunk.toString("latin1");
      if (!link.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!link.frozen) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    /** Freezes the open connections whose client sent `match`; returns how many. */
    freeze(match: string): number {
      const hit = links.filter((l) => !l.frozen && !l.client.destroyed && l.sent.includes(match));
      for (const l of hit) l.frozen = true;
      return hit.length;
    },
    cut() {
      down = true;
      for (const l of links) {
        l.client.resetAndDestroy();
        l.upstream.destroy();
      }
      links.length = 0;
    },
    restore() {
      down = false;
    },
    async stop() {
      for (const l of links) {
        l.client.destroy();
        l.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
