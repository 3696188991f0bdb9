/**
 * The event log's vocabulary, in one place: every type a trigger writes (a test reads the triggers
 * and checks they write nothing else), who an event is about, and so what it means for long-polls
 * and for the listener. Webhook subscriptions are checked against the same list.
 */

/** An event as clients see it, on the socket and from GET /v1/events. */
export interface FlowdEvent {
  seq: number;
  type: string;
  flowId?: string;
  jobId?: string;
  status?: string;
  at: string;
  data?: unknown;
}

/** An event as the log stores it: the user decides who may see it. */
export interface LoggedEvent extends FlowdEvent {
  userId: string;
}

/**
 * `flow`: about a whole flow (written by the flows trigger: created, then its outcome), so it ends
 * a long-poll on the flow. `job`: a job's status changed; for a flow's job that is one of up to
 * 1,000 per flow, so it ends no long-poll on the flow, and the listener skips those while no socket
 * wants them; for a single job it ends the long-poll on that job.
 */
export const EVENT_TYPES = {
  "flow.created": { about: "flow" },
  "flow.completed": { about: "flow" },
  "flow.failed": { about: "flow" },
  "flow.cancelled": { about: "flow" },
  "job.updated": { about: "job" },
  // Written by the job_reports trigger: a running handler's `ctx.log` lines and `ctx.progress`.
  "job.log": { about: "job" },
  "job.progress": { about: "job" },
} as const satisfies Record<string, { about: "flow" | "job" }>;
export type EventType = keyof typeof EVENT_TYPES;
export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[];
export const isEventType = (type: string): type is EventType => Object.hasOwn(EVENT_TYPES, type);

/** The types about one job: for flow jobs, the bulk of the log. */
export const JOB_EVENT_TYPES = EVENT_TYPE_NAMES.filter((t) => EVENT_TYPES[t].about === "job");

/** The id whose long-poll `e` can end (a flow's or a single job's), or null. */
export function longPollTarget(e: Pick<FlowdEvent, "type" | "flowId" | "jobId">): string | null {
  if (e.flowId) return isEventType(e.type) && EVENT_TYPES[e.type].about === "flow" ? e.flowId : null;
  return e.jobId ?? null;
}

/** The doorbell the triggers ring; its payload is only the highest new seq. */
export const EVENTS_CHANNEL = "flowd_events";
