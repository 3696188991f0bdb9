import { AsyncLocalStorage } from "node:async_hooks";
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type ContextManager,
  type Span,
} from "@opentelemetry/api";
import type { BullMQOtel } from "bullmq-otel";
import type { Logger } from "./log";
import { withTimeout } from "./timeout";
import { VERSION } from "./version";

/**
 * Traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. OpenTelemetry's API is process-global by
 * design (libraries such as BullMQ reach the tracer through it), so the one switch lives here:
 * unset, nothing is registered, no span is made and no header is added.
 */
let enabled = false;
/** BullMQ's telemetry adapter, loaded with the SDK. */
let bullmq: BullMQOtel | undefined;

/**
 * Contexts on an AsyncLocalStorage that a request hook can also *enter* (the request's server span
 * for the rest of its async work): Elysia's hooks are not one callback that `context.with` could wrap.
 */
class EnterableContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== "function") return target;
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }
  enter(ctx: Context) {
    this.storage.enterWith(ctx);
  }
  enable() {
    return this;
  }
  disable() {
    this.storage.disable();
    return this;
  }
}
const contexts = new EnterableContextManager();

export interface TelemetryConfig {
  readonly otelEndpoint?: string;
  readonly otelServiceName: string;
}

/**
 * Registers the tracer provider and W3C propagation; `stop()` flushes what is left and unregisters.
 * The SDK and exporter are loaded only here (about 60 ms of module loading a process without
 * tracing does not pay).
 */
export async function startTelemetry(config: TelemetryConfig, log: Logger): Promise<{ stop(): Promise<void> }> {
  if (!config.otelEndpoint) return { stop: async () => {} };
  const [{ W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, TracerProvider }, { BullMQOtel }] =
    await Promise.all([
      import("@opentelemetry/core"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/sdk-trace"),
      import("bullmq-otel"),
    ]);
  const url = config.otelEndpoint.replace(/\/+$/, "") + "/v1/traces";
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": config.otelServiceName, "service.version": VERSION }),
    // A collector that does not answer must not hold a shutdown: exports give up after 5 s.
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url, timeoutMillis: 5_000 }), scheduledDelayMillis: 1000, exportTimeoutMillis: 5_000 })],
  });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(contexts);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  bullmq = new BullMQOtel({ tracerName: "flowd.bullmq", version: VERSION });
  enabled = true;
  const shown = new URL(url);
  shown.username = "";
  shown.password = "";
  log.info("tracing on", { url: shown.toString() });
  return {
    async stop() {
      enabled = false;
      bullmq = undefined;
      await withTimeout(provider.shutdown(), 6_000, "flushing traces").catch((err) => log.warn("flushing traces failed", { err: String(err) }));
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

const tracer = () => trace.getTracer("flowd", VERSION);

/** BullMQ's own telemetry for producers: each add's span, and its context stored in the job's opts. */
export function bullTelemetry(): BullMQOtel | undefined {
  return enabled ? bullmq : undefined;
}

/**
 * Starts a request's server span (continuing an incoming `traceparent`) and makes it current for
 * the rest of the request. Undefined when tracing is off.
 */
export function enterServerSpan(request: Request, path: string): Span | undefined {
  if (!enabled) return undefined;
  const carrier = Object.fromEntries(request.headers);
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  const span = tracer().startSpan(
    request.method,
    { kind: SpanKind.SERVER, attributes: { "http.request.method": request.method, "url.path": path } },
    parent,
  );
  contexts.enter(trace.setSpan(parent, span));
  return span;
}

export function endServerSpan(span: Span, method: string, route: string, status: number) {
  span.updateName(`${method} ${route}`);
  span.setAttributes({ "http.route": route, "http.response.status_code": status });
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** The W3C trace headers of the current span, for an outgoing request; empty when tracing is off. */
export function traceHeaders(): Record<string, string> {
  if (!enabled) return {};
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/**
 * The current span's W3C `traceparent`, kept with a flow or job row so work that starts later from
 * the event log (webhook deliveries) joins the trace of the request that created it; null when
 * tracing is off or no span is current.
 */
export function currentTraceparent(): string | null {
  return traceHeaders().traceparent ?? null;
}

/**
 * BullMQ job opts that make a job's run (inJobSpan) a child of a stored `traceparent`, in the form
 * BullMQ itself stores an add's context (telemetry.metadata); nothing when tracing is off.
 */
export function jobTelemetryFrom(traceparent: string | null | undefined): { telemetry?: { metadata: string } } {
  return enabled && traceparent ? { telemetry: { metadata: JSON.stringify({ traceparent }) } } : {};
}

interface TracedJob {
  id?: string;
  name: string;
  attemptsMade: number;
  opts?: { telemetry?: { metadata?: string } };
}

/**
 * Runs one job attempt in a consumer span whose parent is the context BullMQ stored with the job
 * when it was added (the POST's trace), so HTTP calls the handler makes carry that trace on.
 */
export async function inJobSpan<T>(queue: string, job: TracedJob, run: () => Promise<T>): Promise<T> {
  if (!enabled) return run();
  let parent = ROOT_CONTEXT;
  const metadata = job.opts?.telemetry?.metadata;
  if (metadata) {
    try {
      parent = propagation.extract(ROOT_CONTEXT, JSON.parse(metadata) as Record<string, string>);
    } catch {
      // Unreadable metadata (written by another tool): the job gets a trace of its own.
    }
  }
  const span = tracer().startSpan(
    `process ${queue} ${job.name}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: { "messaging.system": "bullmq", "messaging.destination.name": queue, "flowd.job.id": job.id ?? "", "flowd.handler": job.name, "flowd.attempt": job.attemptsMade + 1 },
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), run);
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}
