import { Webhook } from "standardwebhooks";

/** One request a webhook receiver got: its `webhook-id`, the status it answered, when, and the body. */
export interface Arrival {
  id: string;
  path: string;
  status: number;
  at: number;
  body: { type: string; seq: number; at: string; data: Record<string, unknown> };
}

/**
 * A local webhook receiver whose answer can be switched: `fail` answers 500, `ok` 200, and a path
 * under /hang/ never answers at all. Each request is verified with the standardwebhooks package
 * when its secret is known (`trust`); a signature that does not verify answers 401 and is kept apart.
 */
export function startWebhookReceiver() {
  const arrivals: Arrival[] = [];
  const badSignatures: string[] = [];
  const secrets = new Map<string, string>();
  let mode: "ok" | "fail" = "ok";
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path.startsWith("/hang/")) return new Promise<Response>(() => {});
      const text = await req.text();
      const secret = secrets.get(path);
      if (secret) {
        try {
          new Webhook(secret).verify(text, Object.fromEntries(req.headers));
        } catch {
          badSignatures.push(req.headers.get("webhook-id") ?? "");
          return new Response("bad signature", { status: 401 });
        }
      }
      const status = mode === "ok" ? 200 : 500;
      arrivals.push({ id: req.headers.get("webhook-id") ?? "", path, status, at: Date.now(), body: JSON.parse(text) });
      return new Response(status === 200 ? "ok" : "down", { status });
    },
  });
  return {
    arrivals,
    badSignatures,
    url: (path: string) => `http://127.0.0.1:${server.port}${path}`,
    trust: (path: string, secret: string) => secrets.set(path, secret),
    answer: (m: "ok" | "fail") => (mode = m),
    /** How many 2xx answers each webhook-id got. */
    okCounts(path?: string) {
      const counts = new Map<string, number>();
      for (const a of arrivals) if (a.status === 200 && (!path || a.path === path)) counts.set(a.id, (counts.get(a.id) ?? 0) + 1);
      return counts;
    },
    stop: () => server.stop(true),
  };
}
