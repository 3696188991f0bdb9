/**
 * A burst of concurrent large flow creates against one API process, the way a well-behaved client
 * meets admission control: a 503 `overloaded` is retried after its Retry-After (plus a little
 * jitter, so the refused do not all come back in the same millisecond), under the same
 * Idempotency-Key, until the create is accepted; then the client waits for its flow to finish.
 * Meanwhile the API's RSS and its /healthz latency are sampled.
 */

export interface BurstOptions {
  url: string;
  token: string;
  /** The API process whose memory is sampled. */
  apiPid: number;
  clients: number;
  jobsPerFlow: number;
  /** Whole-run deadline: creates, retries and completions. */
  deadlineMs: number;
  /** Tells runs apart in Idempotency-Keys and flow names. */
  tag: string;
  /** Characters of padding in each job's data, to make bodies large (default none). */
  padding?: number;
}

export interface ClientOutcome {
  client: number;
  flowId: string | null;
  /** Every answer the client got to its POSTs, in order (201 last when it got through). */
  statuses: number[];
  /** Answers that were neither 201 nor a well-formed 503 overloaded with Retry-After. */
  unexpected: string[];
  finalStatus: string | null;
  /** From the first POST to the 201. */
  acceptMs: number;
}

export interface BurstReport {
  outcomes: ClientOutcome[];
  /** Latency of each POST answered 201, and of each answered 503. */
  acceptedMs: number[];
  refusedMs: number[];
  healthzMs: number[];
  /** When (ms from the first POST) each /healthz probe slower than a second was sent. */
  healthzSlowAtMs: number[];
  healthzFailures: number;
  peakRssBytes: number;
  /** The same, until the last create was accepted (the rest is runs and long-polls). */
  peakRssCreatingBytes: number;
  /** From the first POST until the last flow finished. */
  totalMs: number;
  /** From the first POST until the last create was accepted. */
  allAcceptedMs: number;
}

export const flowBody = (jobs: number, tag: string, padding = 0) => {
  const pad = padding > 0 ? { pad: "x".repeat(padding) } : {};
  return {
    name: tag,
    root: { name: "echo", data: { root: true }, children: Array.from({ length: jobs - 1 }, (_, i) => ({ name: "echo", data: { i, ...pad } })) },
  };
};

/** The sum of a Prometheus text's samples whose line starts with `name` (every label set). */
export const metric = (text: string, name: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);

export async function rssBytes(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : 0;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Samples `sample` every `everyMs` until `stop` is set; each sample's own latency paces the next. */
async function sampleUntil(stop: { done: boolean }, everyMs: number, sample: () => Promise<void>) {
  while (!stop.done) {
    const t = performance.now();
    await sample();
    await Bun.sleep(Math.max(0, everyMs - (performance.now() - t)));
  }
}

async function runClient(o: BurstOptions, client: number, body: string, deadline: number, acceptedMs: number[], refusedMs: number[], onAccepted: () => void): Promise<ClientOutcome> {
  const auth = { authorization: `Bearer ${o.token}` };
  const outcome: ClientOutcome = { client, flowId: null, statuses: [], unexpected: [], finalStatus: null, acceptMs: 0 };
  const started = performance.now();
  while (Date.now() < deadline) {
    const t = performance.now();
    const res = await fetch(`${o.url}/v1/flows`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "idempotency-key": `${o.tag}-${client}` },
      body,
    });
    const text = await res.text();
    const ms = performance.now() - t;
    outcome.statuses.push(res.status);
    if (res.status === 201) {
      acceptedMs.push(ms);
      outcome.flowId = (JSON.parse(text) as { id: string }).id;
      outcome.acceptMs = performance.now() - started;
      onAccepted();
      break;
    }
    const retryAfter = Number(res.headers.get("retry-after"));
    const code = res.status === 503 ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined;
    if (res.status !== 503 || code !== "overloaded" || !(retryAfter >= 1)) {
      outcome.unexpected.push(`${res.status} retry-after=${res.headers.get("retry-after")} ${text.slice(0, 200)}`);
      return outcome;
    }
    refusedMs.push(ms);
    await Bun.sleep(retryAfter * 1000 + Math.random() * 250);
  }
  if (!outcome.flowId) return outcome;
  while (Date.now() < deadline) {
    const wait = Math.max(1, Math.min(30, Math.floor((deadline - Date.now()) / 1000)));
    const res = await fetch(`${o.url}/v1/flows/${outcome.flowId}?wait=${wait}`, { headers: auth });
    const view = (await res.json()) as { status?: string };
    outcome.finalStatus = view.status ?? `http ${res.status}`;
    if (res.status !== 200 || view.status !== "running") break;
  }
  return outcome;
}

export async function createBurst(o: BurstOptions): Promise<BurstReport> {
  const body = JSON.stringify(flowBody(o.jobsPerFlow, o.tag, o.padding));
  const deadline = Date.now() + o.deadlineMs;
  const stop = { done: false };
  const acceptedMs: number[] = [];
  const refusedMs: number[] = [];
  const healthzMs: number[] = [];
  const healthzSlowAtMs: number[] = [];
  let healthzFailures = 0;
  let peakRssBytes = await rssBytes(o.apiPid);
  let accepted = 0;
  let allAcceptedMs = 0;
  let peakRssCreatingBytes = 0;
  const started = performance.now();
  const samplers = [
    sampleUntil(stop, 50, async () => {
      const rss = await rssBytes(o.apiPid).catch(() => 0);
      peakRssBytes = Math.max(peakRssBytes, rss);
      if (accepted < o.clients) peakRssCreatingBytes = Math.max(peakRssCreatingBytes, rss);
    }),
    sampleUntil(stop, 100, async () => {
      const t = performance.now();
      const ok = await fetch(`${o.url}/healthz`).then((r) => r.ok, () => false);
      healthzMs.push(performance.now() - t);
      if (performance.now() - t > 1000) healthzSlowAtMs.push(t - started);
      if (!ok) healthzFailures++;
    }),
  ];
  const outcomes = await Promise.all(
    Array.from({ length: o.clients }, (_, i) =>
      runClient(o, i, body, deadline, acceptedMs, refusedMs, () => {
        if (++accepted === o.clients) allAcceptedMs = performance.now() - started;
      }),
    ),
  );
  const totalMs = performance.now() - started;
  stop.done = true;
  await Promise.all(samplers);
  return { outcomes, acceptedMs, refusedMs, healthzMs, healthzSlowAtMs, healthzFailures, peakRssBytes, peakRssCreatingBytes, totalMs, allAcceptedMs };
}

export function describeBurst(r: BurstReport): string {
  const f = (xs: number[], p: number) => (xs.length ? percentile(xs, p).toFixed(0) : "-");
  const mib = (b: number) => (b / 1024 / 1024).toFixed(0);
  return [
    `peak API RSS ${mib(r.peakRssBytes)} MiB (${mib(r.peakRssCreatingBytes)} MiB until every create was accepted)`,
    `healthz p50 ${f(r.healthzMs, 50)} ms, p99 ${f(r.healthzMs, 99)} ms, max ${Math.max(...r.healthzMs).toFixed(0)} ms (${r.healthzMs.length} probes, ${r.healthzFailures} failed; ${r.healthzSlowAtMs.length ? `over 1 s at ${r.healthzSlowAtMs.map((t) => (t / 1000).toFixed(1)).join(", ")} s` : "none over 1 s"})`,
    `POST 201 p50 ${f(r.acceptedMs, 50)} ms, p99 ${f(r.acceptedMs, 99)} ms (${r.acceptedMs.length}); POST 503 p50 ${f(r.refusedMs, 50)} ms, p99 ${f(r.refusedMs, 99)} ms (${r.refusedMs.length})`,
    `first POST to accepted per client p50 ${f(r.outcomes.map((o) => o.acceptMs), 50)} ms, p99 ${f(r.outcomes.map((o) => o.acceptMs), 99)} ms; all accepted after ${(r.allAcceptedMs / 1000).toFixed(1)} s, all finished after ${(r.totalMs / 1000).toFixed(1)} s`,
  ].join("\n");
}
