/** A WebSocket client for tests: every message is kept, and `next` waits for one with a deadline. */
export interface WsClient {
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: unknown): void;
  sendRaw(data: string | Uint8Array): void;
  next(match: (m: any) => boolean, ms?: number): Promise<any>;
  close(): void;
}

export async function connectWs(url: string, token?: string, opts: { viaQuery?: boolean } = {}): Promise<WsClient> {
  const target = token && opts.viaQuery ? `${url}?token=${encodeURIComponent(token)}` : url;
  const ws = new WebSocket(target, token && !opts.viaQuery ? ({ headers: { authorization: `Bearer ${token}` } } as any) : undefined);
  const messages: any[] = [];
  const waiters = new Set<() => void>();
  let resolveClosed!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r));
  ws.onmessage = (e) => {
    messages.push(JSON.parse(String(e.data)));
    for (const w of waiters) w();
  };
  ws.onclose = (e) => {
    resolveClosed({ code: e.code, reason: e.reason });
    for (const w of waiters) w();
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  let seen = 0;
  return {
    messages,
    closed,
    send: (msg) => ws.send(JSON.stringify(msg)),
    sendRaw: (data) => ws.send(data),
    next(match, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = seen; i < messages.length; i++) {
            if (match(messages[i])) {
              seen = i + 1;
              waiters.delete(check);
              clearTimeout(timer);
              resolve(messages[i]);
              return;
            }
          }
          if (ws.readyState === WebSocket.CLOSED) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error("socket closed while waiting for a message"));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching message within ${ms} ms; got ${JSON.stringify(messages.slice(-5))}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close: () => ws.close(),
  };
}

/** The event messages a client got, as seqs. */
export const eventSeqs = (c: WsClient) => c.messages.filter((m) => m.type === "event").map((m) => m.seq as number);
