import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import type { FlowdProcess } from "../helpers/process";
import { waitFor } from "../helpers/wait";
import { startOtlpReceiver } from "./otlp-receiver";
import { promtool } from "./promtool";

// Real API and worker processes with tracing on (an OTLP/HTTP receiver in this test), a worker
// health port, and a loopback target for `http` jobs and webhooks that keeps the headers it got.
const otlp = startOtlpReceiver();
const calls: { path: string; traceparent: string | null; body: string }[] = [];
const target = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    calls.push({ path: new URL(req.url).pathname, traceparent: req.headers.get("traceparent"), body: await req.text() });
    return Response.json({ ok: true });
  },
});
const targetUrl = (path: string) => `http://127.0.0.1:${target.port}${path}`;

let cluster: Cluster;
let api: ApiProcess;
let worker: FlowdProcess;
let workerBase = "";

const json = (lines: string[]) =>
  lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, any>];
    } catch {
      return [];
    }
  });

beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 0, tag: "obs", env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, FLOWD_WEBHOOK_RETRY_SCHEDULE: "100ms,200ms,400ms,800ms,1600ms,3200ms,6400ms" } });
  api = cluster.apis[0]!;
  ({ proc: worker, base: workerBase } = await cluster.startWorkerWithHealthPort());
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  otlp.stop();
  target.stop(true);
});

describe("request logs", () => {
  test("x-request-id comes back, and the request's log line has it with method, route, status, duration and user", async () => {
    const res = await api.http("POST", "/v1/flows", { name: "logged", root: { name: "echo" } }, { headers: { "x-request-id": "obs-req-1" } });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-request-id")).toBe("obs-req-1");
    const line = await waitFor(() => json(api.proc.lines).find((l) => l.msg === "request" && l.requestId === "obs-req-1"), 10_000, "the request's log line");
    expect(line).toMatchObject({ level: "info", method: "POST", route: "/v1/flows", status: 201 });
    expect(typeof line.durationMs).toBe("number");
    expect(line.durationMs).toBeGreaterThan(0);
    expect(typeof line.userId).toBe("string");
  });

  test("an id is made when none or an unusable one is sent, and routes are patterns", async () => {
    const none = await api.http("GET", "/v1/flows/00000000-0000-0000-0000-000000000000");
    const made = none.headers.get("x-request-id");
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    const bad = await api.http("GET", "/healthz", undefined, { headers: { "x-request-id": "x".repeat(500) } });
    expect(bad.headers.get("x-request-id")).not.toBe("x".repeat(500));
    const line = await waitFor(() => json(api.proc.lines).find((l) => l.msg === "request" && l.requestId === made), 10_000, "the 404's log line");
    expect(line).toMatchObject({ method: "GET", route: "/v1/flows/:id", status: 404 });
  });

  test("a failed job attempt is a warn line on the worker: job, queue, handler, attempt, error", async () => {
    const res = await api.http("POST", "/v1/flows", { name: "failing", root: { name: "fail", data: { message: "obs-boom" }, opts: { attempts: 2, backoff: { type: "fixed", delay: 10 } } } });
    expect(res.status).toBe(201);
    const warns = await waitFor(() => {
      const found = json(worker.lines).filter((l) => l.msg === "job attempt failed" && l.error === "obs-boom");
      return found.length >= 2 ? found : null;
    }, 20_000, "two failed-attempt lines");
    expect(warns.map((w) => w.attempt).sort()).toEqual([1, 2]);
    expect(warns[0]).toMatchObject({ level: "warn", queue: "flows", handler: "fail" });
    expect(warns.every((w) => typeof w.jobId === "string" && w.jobId.length > 0)).toBe(true);
    expect(warns.find((w) => w.attempt === 2)?.final).toBe(true);
  }, 30_000);
});

describe("metrics", () => {
  test("the API's /metrics: promtool-clean, runtime, HTTP histogram, build info, base units", async () => {
    const flow = await api.http("POST", "/v1/flows", { name: "metered", root: { name: "echo" } });
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("completed");
    // The request log and the histogram are written after the response went out.
    const text = await waitFor(async () => {
      const t = await (await fetch(`${api.url}/metrics`)).text();
      return /flowd_http_request_duration_seconds_count\{method="POST",route="\/v1\/flows",status="201"\} [1-9]/.test(t) ? t : null;
    }, 10_000, "the POST in the histogram");
    expect(await promtool(text)).toEqual({ code: 0, output: "" });
    expect(text).toContain("# TYPE flowd_http_request_duration_seconds histogram");
    expect(text).toMatch(/^flowd_build_info\{version="[^"]+"\} 1$/m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    expect(text).toMatch(/^flowd_listener_lag_seconds /m);
    expect(text).toMatch(/^flowd_queue_jobs\{queue="flows",status="completed"\} \d+$/m);
    expect(text).not.toMatch(/^flowd_\w+_ms[ {]/m);
    expect(text).not.toMatch(/\bstate="/);
  }, 30_000);

  test("the worker port's /metrics: promtool-clean, job run time and wait histograms, monotonic counters", async () => {
    const flow = await api.http("POST", "/v1/flows", { name: "timed", root: { name: "echo", children: [{ name: "sleep", data: { ms: 20 } }] } });
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("completed");
    const text = await waitFor(async () => {
      const t = await (await fetch(`${workerBase}/metrics`)).text();
      return /^flowd_jobs_completed_total\{queue="flows",handler="sleep"\} [1-9]/m.test(t) ? t : null;
    }, 10_000, "the sleep job counted");
    expect(await promtool(text)).toEqual({ code: 0, output: "" });
    expect(text).toContain("# TYPE flowd_job_run_seconds histogram");
    expect(text).toContain("# TYPE flowd_job_wait_seconds histogram");
    expect(text).toMatch(/^flowd_job_run_seconds_count\{queue="flows",handler="echo"\} [1-9]/m);
    expect(text).toMatch(/^flowd_job_wait_seconds_count\{queue="flows",handler="sleep"\} [1-9]/m);
    expect(text).toContain("# TYPE flowd_jobs_completed_total counter");
    expect(text).toContain("# TYPE flowd_jobs_failed_total counter");
    expect(text).toMatch(/^flowd_build_info\{version="[^"]+"\} 1$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^flowd_recorder_lag_seconds /m);
    expect(text).not.toMatch(/^flowd_\w+_ms[ {]/m);
    // The sleep ran 20 ms: its run time sits in the buckets above 10 ms.
    expect(text).toMatch(/^flowd_job_run_seconds_bucket\{le="0.01",queue="flows",handler="sleep"\} 0$/m);
  }, 30_000);
  test("a parent BullMQ failed because its child failed is counted in flowd_jobs_failed_total, once", async () => {
    // A handler name of its own, so no other flow of this file adds to the parent's series.
    const flow = await api.http("POST", "/v1/flows", { name: "orphaned", root: { name: "sleep", data: { ms: 0, parentOfFail: true }, children: [{ name: "fail", data: { message: "child-boom" } }] } });
    expect(flow.status).toBe(201);
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("failed");
    // Counted by whichever process records statuses (here the worker, which takes the lease first):
    // summed over both, it is exactly one.
    const series = /^flowd_jobs_failed_total\{queue="flows",handler="sleep"\} (\d+)$/m;
    const scrape = async () => Promise.all([`${api.url}/metrics`, `${workerBase}/metrics`].map(async (u) => (await fetch(u)).text()));
    const texts = await waitFor(async () => {
      const t = await scrape();
      return t.some((x) => series.test(x)) ? t : null;
    }, 10_000, "the parent's failure counted");
    expect(texts.reduce((n, t) => n + Number(series.exec(t)?.[1] ?? 0), 0)).toBe(1);
    for (const t of texts) expect(await promtool(t)).toEqual({ code: 0, output: "" });
    // The child itself is counted by the worker that ran it, as before.
    expect(texts[1]).toMatch(/^flowd_jobs_failed_total\{queue="flows",handler="fail"\} [1-9]/m);
  }, 30_000);
});

describe("traces", () => {
  test("one trace holds the POST /v1/flows span and every job run, and the http job's call carries it", async () => {
    const res = await api.http("POST", "/v1/flows", {
      name: "traced",
      root: { name: "http", data: { url: targetUrl("/task"), method: "POST" }, children: [{ name: "echo", data: { n: 1 } }, { name: "echo", data: { n: 2 } }] },
    });
    expect(res.status).toBe(201);
    expect((await api.http("GET", `/v1/flows/${res.body.id}?wait=20`)).body.status).toBe("completed");
    const post = await waitFor(
      () => otlp.spans.find((s) => s.name === "POST /v1/flows" && s.kind === 2 && otlp.spans.some((c) => c.traceId === s.traceId && c.name === "process flows http")),
      20_000,
      "the POST's server span and its http job's span",
    );
    const trace = () => otlp.spans.filter((s) => s.traceId === post.traceId);
    const runs = await waitFor(() => {
      const r = trace().filter((s) => s.name.startsWith("process flows "));
      return r.length >= 3 ? r : null;
    }, 20_000, "three job spans in the POST's trace");
    expect(runs.map((r) => r.name).sort()).toEqual(["process flows echo", "process flows echo", "process flows http"]);
    expect(runs.every((r) => r.kind === 5)).toBe(true); // CONSUMER
    expect(post.attributes["http.response.status_code"]).toBe(201);
    expect(new Set(trace().map((s) => s.service))).toEqual(new Set(["flowd"]));
    // Every span of the trace hangs off another of its spans, up to the POST.
    const ids = new Set(trace().map((s) => s.spanId));
    for (const s of trace()) if (s !== post) expect(ids.has(s.parentSpanId ?? "")).toBe(true);
    // The http job's request carries the trace (W3C traceparent: version-trace-span-flags).
    const call = calls.find((c) => c.path === "/task");
    expect(call?.traceparent?.split("-")[1]).toBe(post.traceId);
    const httpRun = runs.find((r) => r.name === "process flows http")!;
    expect(call?.traceparent?.split("-")[2]).toBe(httpRun.spanId);
  }, 40_000);

  test("a webhook delivery joins the trace of the request that created the flow (or the single job), and sends it on", async () => {
    const hook = await api.http("POST", "/v1/webhooks", { url: targetUrl("/hook"), events: ["flow.completed", "job.updated"] });
    expect(hook.status).toBe(201);
    const flow = await api.http("POST", "/v1/flows", { name: "hooked", root: { name: "echo" } });
    const job = await api.http("POST", "/v1/jobs", { name: "echo", data: { hooked: true } });
    expect(job.status).toBe(201);
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("completed");
    for (const [what, post, delivered] of [
      ["flow", "POST /v1/flows", (b: any) => b.type === "flow.completed" && b.data.flowId === flow.body.id],
      ["job", "POST /v1/jobs", (b: any) => b.type === "job.updated" && b.data.id === job.body.id && b.data.status === "completed"],
    ] as const) {
      const call = await waitFor(() => calls.find((c) => c.path === "/hook" && delivered(JSON.parse(c.body))), 20_000, `the ${what}'s delivery`);
      const traceId = call.traceparent?.split("-")[1];
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      // The span that sent it is a delivery's, a child of the creating request's server span.
      const sentBy = call.traceparent?.split("-")[2];
      const span = await waitFor(() => otlp.spans.find((s) => s.traceId === traceId && s.spanId === sentBy), 20_000, `the ${what}'s delivery span`);
      expect(span.name).toBe("process webhooks deliver");
      const server = await waitFor(() => otlp.spans.find((s) => s.traceId === traceId && s.name === post && s.kind === 2), 20_000, `${post} in the delivery's trace`);
      expect(span.parentSpanId).toBe(server.spanId);
    }
  }, 40_000);

  test("a collector that does not answer delays neither requests nor a clean shutdown", async () => {
    // A port that just closed: nothing listens there.
    const gone = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const deadUrl = `http://127.0.0.1:${gone.port}`;
    gone.stop(true);
    const lonely = await cluster.startApi({ OTEL_EXPORTER_OTLP_ENDPOINT: deadUrl });
    const res = await lonely.http("POST", "/v1/flows", { name: "untraced", root: { name: "echo" } });
    expect(res.status).toBe(201);
    cluster.apis.splice(cluster.apis.indexOf(lonely), 1);
    const started = Date.now();
    expect(await lonely.proc.stop("SIGTERM", 20_000)).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 40_000);

  test("the receiver was only sent OTLP/HTTP JSON", () => {
    expect(otlp.refused).toEqual([]);
  });
});
