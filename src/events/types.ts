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

export const EVENT_TYPES = ["flow.created", "flow.completed", "flow.failed", "flow.cancelled", "job.updated"] as const;

/** The doorbell the triggers ring; its payload is only the highest new seq. */
export const EVENTS_CHANNEL = "flowd_events";
