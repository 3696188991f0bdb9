import { Elysia } from "elysia";
import type { Config } from "../../config";
import type { Db } from "../../db/client";
import { deliveryCounts, jobCounts } from "../../db/queries/metrics";
import type { Hub } from "../../events/hub";
import type { Listener } from "../../events/listener";
import { exposition, METRICS_CONTENT_TYPE, type Metric, type Metrics } from "../../metrics";
import type { AdmissionStats } from "../admission";
import { METRICS_RESPONSES } from "../models/openapi";
import type { RecorderWatch, StreamBacklog } from "../../services/recorder-health";
import type { Producer } from "../../queues";
import { JOBS_QUEUE } from "../../services/jobs";
import { SCHEDULES_QUEUE } from "../../services/schedules";
import { WEBHOOKS_QUEUE } from "../../services/webhooks";
import { shardLabel } from "../../shards";
import { outboxCounts } from "../../db/queries/webhook-outbox";
import { limitKeyCounts } from "../../db/queries/limits";

/** Keys shown in flowd_limit_jobs: a key is a label value, so only the busiest few, whatever users name. */
const LIMIT_METRIC_KEYS = 20;
import { countParkedWaits } from "../../db/queries/waits";
import { PARKED_WAIT_REASONS } from "../../scheduling/waiting-for";

/** A stream's labels: `shard` only when FLOWD_SHARDS splits the queues (one shard keeps today's series). */
const streamLabels = (st: StreamBacklog): Record<string, string> => (st.shard === null ? { queue: st.queue } : { queue: st.queue, shard: shardLabel(st.shard) });

/**
 * GET /metrics (Prometheus text): what the API process knows — jobs in Postgres, queues in Redis,
 * its listener and sockets — after the registry's process, runtime and HTTP metrics.
 */
export const metricsRoutes = (deps: {
  metrics: Metrics;
  config: Config;
  db: Db;
  producer: Producer;
  hub: Hub;
  listener?: Listener;
  socketCount: () => number;
  admission?: AdmissionStats;
  recorder?: RecorderWatch;
}) =>
  new Elysia({ name: "metrics" }).get(
    "/metrics",
    async ({ set }) => {
      const queues = [...deps.config.flowQueues, JOBS_QUEUE, SCHEDULES_QUEUE, WEBHOOKS_QUEUE];
      const [rows, deliveries, outbox, depths, waits, limits] = await Promise.all([
        jobCounts(deps.db),
        deliveryCounts(deps.db),
        outboxCounts(deps.db),
        Promise.all(queues.map(async (q) => [q, await deps.producer.jobCounts(q)] as const)),
        countParkedWaits(deps.db),
        limitKeyCounts(deps.db, LIMIT_METRIC_KEYS),
      ]);
      const listener = deps.listener?.stats;
      const metrics: Metric[] = [
        {
          name: "flowd_jobs",
          // A gauge: deleting finished flows lowers it. rate() wants flowd_jobs_completed_total and
          // flowd_jobs_failed_total (worker health port), which only ever rise.
          help: "Tracked jobs in Postgres now, by table, queue and status; falls when flows or jobs are deleted (for rates use flowd_jobs_completed_total and flowd_jobs_failed_total).",
          type: "gauge",
          samples: rows.map((r) => ({ labels: { table: r.tbl, queue: r.queue, status: r.status }, value: r.n })),
        },
        {
          name: "flowd_waiting_steps",
          help: "Wait steps parked now (holding no worker slot), by what they wait for: sleep, signal or approval.",
          type: "gauge",
          samples: PARKED_WAIT_REASONS.map((reason) => ({ labels: { reason }, value: waits[reason] ?? 0 })),
        },
        {
          name: "flowd_queue_jobs",
          help: "Jobs in BullMQ (Redis, or its Postgres backend) by queue and BullMQ state (in the label status, as for flowd_jobs).",
          type: "gauge",
          samples: depths.flatMap(([queue, counts]) =>
            Object.entries(counts as Record<string, number>).map(([status, n]) => ({ labels: { queue, status }, value: n })),
          ),
        },
        {
          name: "flowd_limit_jobs",
          help: `Jobs under per-key limits by key and state: waiting (held for the key's turn) or running (released, unfinished); the ${LIMIT_METRIC_KEYS} busiest keys only.`,
          type: "gauge",
          samples: limits.flatMap((k) => [
            { labels: { key: k.key, state: "waiting" }, value: k.waiting },
            { labels: { key: k.key, state: "running" }, value: k.running },
          ]),
        },
        {
          name: "flowd_webhook_attempts_total",
          help: "Webhook delivery attempts made, by outcome.",
          type: "counter",
          samples: deliveries.map((d) => ({ labels: { outcome: d.outcome }, value: d.n })),
        },
        {
          name: "flowd_webhook_outbox",
          help: "Webhook deliveries not yet done, by status: pending (a row waiting for its time or a slot of its user), running (handed to Redis).",
          type: "gauge",
          samples: outbox.map((o) => ({ labels: { status: o.state }, value: o.n })),
        },
        { name: "flowd_socket_clients", help: "Open WebSocket clients on this process.", type: "gauge", samples: [{ value: deps.socketCount() }] },
        { name: "flowd_events_published_total", help: "Events this process sent to subscribed sockets.", type: "counter", samples: [{ value: deps.hub.stats.published }] },
      ];
      const recorder = deps.recorder?.current;
      if (recorder)
        metrics.push(
          { name: "flowd_recorder_alive", help: "1 if a process holds the status recorder's lease.", type: "gauge", samples: [{ value: recorder.alive ? 1 : 0 }] },
          {
            name: "flowd_recorder_backlog_seconds",
            help: "Age of the oldest BullMQ event the status recorder has not recorded yet, by queue (0: caught up).",
            type: "gauge",
            samples: recorder.streams.map((st) => ({ labels: streamLabels(st), value: st.lagMs / 1000 })),
          },
          {
            name: "flowd_event_stream_length",
            help: "Entries in each queue's BullMQ event stream.",
            type: "gauge",
            samples: recorder.streams.map((st) => ({ labels: streamLabels(st), value: st.length })),
          },
          { name: "flowd_event_stream_max_length", help: "The streams' cap (FLOWD_EVENT_STREAM_MAX_LEN).", type: "gauge", samples: [{ value: deps.config.eventStreamMaxLen }] },
        );
      const admission = deps.admission;
      if (admission)
        metrics.push(
          { name: "flowd_creates_in_flight", help: "Creates (POST flows, jobs, schedules) running on this process.", type: "gauge", samples: [{ value: admission.inFlight }] },
          { name: "flowd_create_bytes_in_flight", help: "Body bytes of the creates running on this process.", type: "gauge", samples: [{ value: admission.bytesInFlight }] },
          { name: "flowd_create_jobs_in_flight", help: "Jobs of the creates running on this process (estimated from the body's length until it is parsed).", type: "gauge", samples: [{ value: admission.jobsInFlight }] },
          { name: "flowd_creates_waiting", help: "Creates waiting for room (FLOWD_ADMISSION_WAIT_MS).", type: "gauge", samples: [{ value: admission.waiting }] },
          { name: "flowd_creates_admitted_total", help: "Creates let in by admission control.", type: "counter", samples: [{ value: admission.admitted }] },
          { name: "flowd_creates_waited_total", help: "Creates let in after waiting for room.", type: "counter", samples: [{ value: admission.waited }] },
          { name: "flowd_creates_abandoned_total", help: "Creates whose client went away while they waited for room.", type: "counter", samples: [{ value: admission.abandoned }] },
          {
            name: "flowd_creates_refused_total",
            help: "Creates refused with 503 overloaded, by the bound they met.",
            type: "counter",
            samples: [
              { labels: { limit: "creates" }, value: admission.refused.creates },
              { labels: { limit: "bytes" }, value: admission.refused.bytes },
              { labels: { limit: "jobs" }, value: admission.refused.jobs },
              { labels: { limit: "waiters" }, value: admission.refused.waiters },
              { labels: { limit: "recorder_lag" }, value: admission.refused.recorderLag },
            ],
          },
        );
      if (listener)
        metrics.push(
          { name: "flowd_listener_last_seq", help: "Highest event seq this process has caught up to (read, or passed while nothing here listened).", type: "gauge", samples: [{ value: listener.lastSeq }] },
          { name: "flowd_listener_lag_seconds", help: "Age of the newest event when it was read.", type: "gauge", samples: [{ value: listener.lagMs / 1000 }] },
          { name: "flowd_listener_notifications_total", help: "NOTIFY doorbells received.", type: "counter", samples: [{ value: listener.notifications }] },
          { name: "flowd_listener_reconnects_total", help: "Reconnects of the LISTEN connection.", type: "counter", samples: [{ value: listener.reconnects }] },
        );
      set.headers["content-type"] = METRICS_CONTENT_TYPE;
      return exposition(deps.metrics, metrics);
    },
    { detail: { operationId: "getMetrics", summary: "Prometheus metrics of this API process", tags: ["health"], security: [], responses: METRICS_RESPONSES } },
  );
