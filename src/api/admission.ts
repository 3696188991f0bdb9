import { AppError } from "../errors";

/** Bounds on what one API process holds for creates in flight, and on how long a create waits for room. */
export interface AdmissionLimits {
  /** Creates in flight at once (FLOWD_MAX_CREATES_IN_FLIGHT). */
  maxCreates: number;
  /** Bytes of their bodies (FLOWD_MAX_CREATE_BYTES_IN_FLIGHT). */
  maxBytes: number;
  /** Jobs they hold (FLOWD_MAX_CREATE_JOBS_IN_FLIGHT): what a create's memory grows with. */
  maxJobs: number;
  /** What a body of unknown length (chunked) is counted as: the most the body plugin will read. */
  bodyLimit: number;
  /**
   * The most jobs one create can make (FLOWD_MAX_FLOW_JOBS, a bulk create's 1,000). No estimate goes
   * above it: a body that holds more is refused by validation before any of its writes are built.
   */
  maxJobsPerCreate: number;
  /** How long a create waits for room before 503 (FLOWD_ADMISSION_WAIT_MS); 0 refuses at once. */
  waitMs: number;
  /** Creates that may wait at once (FLOWD_ADMISSION_MAX_WAITERS); past it, 503 at once. */
  maxWaiters: number;
  /**
   * How far behind the status recorder is, in ms (0 when caught up or unknown), and the most it may
   * be (FLOWD_RECORDER_MAX_LAG_MS) before creates are refused: past it, every new job only adds to
   * a backlog that is not reaching Postgres.
   */
  recorderLagMs?: () => number;
  maxRecorderLagMs?: number;
}

/** The bounds a create can wait on. */
export type Limit = "creates" | "bytes" | "jobs";

export interface AdmissionStats {
  inFlight: number;
  bytesInFlight: number;
  jobsInFlight: number;
  /** Creates waiting for room now. */
  waiting: number;
  admitted: number;
  /** Of the admitted, those that waited first. */
  waited: number;
  /** Clients that went away while waiting. */
  abandoned: number;
  refused: Record<Limit, number> & { waiters: number; recorderLag: number };
}

/** Seconds a refused client is told to wait: about the time a large create takes under load. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * The fewest bytes a job takes in a body: `{"name":"a"}` and a comma. The declared length divided
 * by it bounds the jobs a body can hold before a byte of it is read.
 */
export const MIN_JOB_BYTES = 13;

/** 503 `overloaded` with `Retry-After` (the error plugin sends the header along). */
export class Overloaded extends AppError {
  readonly headers: Record<string, string>;
  constructor(message: string, retryAfterSeconds = RETRY_AFTER_SECONDS) {
    super(503, "overloaded", message, { retryAfterSeconds });
    this.name = "Overloaded";
    this.headers = { "retry-after": String(retryAfterSeconds) };
  }
}

/** A create's place among those in flight. Every method may be called again (and after release) harmlessly. */
export interface Ticket {
  /**
   * Lowers what is held to what the parsed body holds (never raises it): its jobs, and its bytes
   * (a body without `Content-Length` was held as the whole body limit). Waiters that now fit go in.
   */
  settle(parsed: Cost): void;
  /** Gives the place back and lets the next waiters in. */
  release(): void;
}

export interface Cost {
  bytes: number;
  jobs: number;
}

interface Waiter {
  cost: Cost;
  /** Ends the wait: clears its timer and abort listener, and answers it. */
  finish(answer: Ticket | Overloaded): void;
}

const LIMIT_TEXT: Record<Limit, (l: AdmissionLimits) => string> = {
  creates: (l) => `limit of ${l.maxCreates} creates in flight (FLOWD_MAX_CREATES_IN_FLIGHT)`,
  bytes: (l) => `limit of ${l.maxBytes} bytes of create bodies in flight (FLOWD_MAX_CREATE_BYTES_IN_FLIGHT)`,
  jobs: (l) => `limit of ${l.maxJobs} jobs of creates in flight (FLOWD_MAX_CREATE_JOBS_IN_FLIGHT)`,
};

/**
 * Counts creates in flight by their cost — bytes of body, jobs — and lets a create that does not fit
 * wait, first come first served, up to `waitMs` for room before answering 503 `overloaded`. A waiter
 * holds its connection and nothing else: admission runs before the body is read, and Bun reads no
 * body nobody asked for, so a wait costs no memory the bounds protect. The number of waiters is
 * bounded too, so a flood is answered quickly instead of parking connections without end.
 */
export function createAdmission(limits: AdmissionLimits) {
  const stats: AdmissionStats = {
    inFlight: 0, bytesInFlight: 0, jobsInFlight: 0, waiting: 0, admitted: 0, waited: 0, abandoned: 0,
    refused: { creates: 0, bytes: 0, jobs: 0, waiters: 0, recorderLag: 0 },
  };
  const queue: Waiter[] = [];

  const costOf = (declaredBytes: number | undefined): Cost => {
    const known = declaredBytes !== undefined && Number.isFinite(declaredBytes) && declaredBytes >= 0;
    const bytes = Math.min(known ? declaredBytes : limits.bodyLimit, limits.bodyLimit);
    return { bytes, jobs: Math.max(1, Math.min(Math.ceil(bytes / MIN_JOB_BYTES), limits.maxJobsPerCreate)) };
  };

  /**
   * The bound a create of this cost would pass, if any. A lone create is always let in, however
   * large, so a body that alone passes a bound (it is still under FLOWD_BODY_LIMIT) is never refused forever.
   */
  const blockedBy = (cost: Cost): Limit | undefined => {
    if (stats.inFlight === 0) return undefined;
    if (stats.inFlight >= limits.maxCreates) return "creates";
    if (stats.bytesInFlight + cost.bytes > limits.maxBytes) return "bytes";
    if (stats.jobsInFlight + cost.jobs > limits.maxJobs) return "jobs";
    return undefined;
  };

  /** Why a create that is not let in waits: its own fit, or else the head it queues behind. */
  const reasonFor = (cost: Cost): Limit => blockedBy(cost) ?? (queue[0] && blockedBy(queue[0].cost)) ?? "creates";

  const take = (cost: Cost): Ticket => {
    stats.inFlight++;
    stats.bytesInFlight += cost.bytes;
    stats.jobsInFlight += cost.jobs;
    stats.admitted++;
    const held = { ...cost };
    let released = false;
    return {
      settle(parsed) {
        const jobs = Math.min(held.jobs, Math.max(1, Math.floor(parsed.jobs)));
        const bytes = Math.min(held.bytes, Math.max(0, Math.floor(parsed.bytes)));
        if (released || (jobs === held.jobs && bytes === held.bytes)) return;
        stats.jobsInFlight -= held.jobs - jobs;
        stats.bytesInFlight -= held.bytes - bytes;
        held.jobs = jobs;
        held.bytes = bytes;
        wake();
      },
      release() {
        if (released) return;
        released = true;
        stats.inFlight--;
        stats.bytesInFlight -= held.bytes;
        stats.jobsInFlight -= held.jobs;
        wake();
      },
    };
  };

  /** Lets waiters in from the head while the head fits: strictly in order, so a large create is not passed over forever. */
  const wake = () => {
    while (queue.length > 0 && blockedBy(queue[0]!.cost) === undefined) {
      const waiter = queue.shift()!;
      stats.waiting = queue.length;
      stats.waited++;
      waiter.finish(take(waiter.cost));
    }
  };

  const refuse = (limit: Limit, waitedMs: number) => {
    stats.refused[limit]++;
    const waited = waitedMs > 0 ? ` and no room came within ${waitedMs} ms (FLOWD_ADMISSION_WAIT_MS)` : "";
    return new Overloaded(`The API is at its ${LIMIT_TEXT[limit](limits)}${waited}; retry after ${RETRY_AFTER_SECONDS} s.`);
  };

  const wait = (cost: Cost, signal: AbortSignal | undefined) =>
    new Promise<Ticket | Overloaded>((resolve) => {
      const onAbort = () => {
        leave();
        stats.abandoned++;
        finish(new Overloaded("The client went away while its create waited for room."));
      };
      const timer = setTimeout(() => {
        leave();
        finish(refuse(reasonFor(cost), limits.waitMs));
      }, limits.waitMs);
      const waiter: Waiter = { cost, finish };
      function finish(answer: Ticket | Overloaded) {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(answer);
      }
      function leave() {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        stats.waiting = queue.length;
        // The head may have been what held those behind it back.
        if (at === 0) wake();
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      queue.push(waiter);
      stats.waiting = queue.length;
    });

  return {
    stats,
    /**
     * A place for a create whose body declares `declaredBytes` (undefined or not a number: unknown,
     * counted as the body limit), or the 503 to answer. Synchronous when it fits at once (or is refused
     * at once); otherwise a promise that settles when room comes, the wait runs out, or the client's
     * `signal` aborts (asked for only then: most creates never wait).
     */
    admit(declaredBytes: number | undefined, clientSignal?: () => AbortSignal): Ticket | Overloaded | Promise<Ticket | Overloaded> {
      const lagMs = limits.recorderLagMs?.() ?? 0;
      if (limits.maxRecorderLagMs !== undefined && lagMs > limits.maxRecorderLagMs) {
        stats.refused.recorderLag++;
        return new Overloaded(
          `The status recorder is ${Math.round(lagMs / 1000)} s behind, past FLOWD_RECORDER_MAX_LAG_MS (${limits.maxRecorderLagMs} ms); creates are refused until it catches up (add worker capacity or check the workers' logs), retry after ${RETRY_AFTER_SECONDS} s.`,
        );
      }
      const cost = costOf(declaredBytes);
      // Behind anyone already waiting, even when it would fit: first come, first served.
      if (queue.length === 0 && blockedBy(cost) === undefined) return take(cost);
      const limit = reasonFor(cost);
      if (limits.waitMs <= 0 || limits.maxWaiters <= 0) return refuse(limit, 0);
      if (queue.length >= limits.maxWaiters) {
        stats.refused.waiters++;
        return new Overloaded(
          `The API is at its ${LIMIT_TEXT[limit](limits)}, and ${limits.maxWaiters} creates already wait for room (FLOWD_ADMISSION_MAX_WAITERS); retry after ${RETRY_AFTER_SECONDS} s.`,
        );
      }
      const signal = clientSignal?.();
      if (signal?.aborted) return new Overloaded("The client went away before its create was admitted.");
      return wait(cost, signal);
    },
  };
}
export type Admission = ReturnType<typeof createAdmission>;
