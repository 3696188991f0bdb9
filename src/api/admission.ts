import { AppError } from "../errors";

/** Bounds on what one API process holds for creates in flight. */
export interface AdmissionLimits {
  /** Creates in flight at once (FLOWD_MAX_CREATES_IN_FLIGHT). */
  maxCreates: number;
  /** Bytes of their bodies (FLOWD_MAX_CREATE_BYTES_IN_FLIGHT). */
  maxBytes: number;
  /** What a body of unknown length (chunked) is counted as: the most the body plugin will read. */
  bodyLimit: number;
  /**
   * How far behind the status recorder is, in ms (0 when caught up or unknown), and the most it may
   * be (FLOWD_RECORDER_MAX_LAG_MS) before creates are refused: past it, every new job only adds to
   * a backlog that is not reaching Postgres.
   */
  recorderLagMs?: () => number;
  maxRecorderLagMs?: number;
}

export interface AdmissionStats {
  inFlight: number;
  bytesInFlight: number;
  admitted: number;
  refused: { creates: number; bytes: number; recorderLag: number };
}

/** Seconds a refused client is told to wait: about the time a large create takes under load. */
export const RETRY_AFTER_SECONDS = 1;

/** 503 `overloaded` with `Retry-After` (the error plugin sends the header along). */
export class Overloaded extends AppError {
  readonly headers: Record<string, string>;
  constructor(message: string, retryAfterSeconds = RETRY_AFTER_SECONDS) {
    super(503, "overloaded", message, { retryAfterSeconds });
    this.name = "Overloaded";
    this.headers = { "retry-after": String(retryAfterSeconds) };
  }
}

/** Gives a create's slot back; a second call does nothing, so every exit path may call it. */
export type Release = () => void;

/**
 * Counts creates in flight and the bytes of their bodies, and refuses one that would pass either
 * bound. No queue: a refusal is immediate and the client's Retry-After is the queue, so a burst
 * costs this process nothing but a short answer per refused request (no timers, no parked
 * connections, no hidden latency added to the creates that do run).
 */
export function createAdmission(limits: AdmissionLimits) {
  const stats: AdmissionStats = { inFlight: 0, bytesInFlight: 0, admitted: 0, refused: { creates: 0, bytes: 0, recorderLag: 0 } };
  return {
    stats,
    /**
     * Takes a slot for a body of `declaredBytes` (undefined or not a number: unknown, counted as the
     * body limit). A lone create is always let in, however large, so a body that alone passes the
     * byte bound (it is still under FLOWD_BODY_LIMIT) is never refused forever.
     */
    enter(declaredBytes: number | undefined): Release | Overloaded {
      const known = declaredBytes !== undefined && Number.isFinite(declaredBytes) && declaredBytes >= 0;
      const bytes = Math.min(known ? declaredBytes : limits.bodyLimit, limits.bodyLimit);
      const lagMs = limits.recorderLagMs?.() ?? 0;
      if (limits.maxRecorderLagMs !== undefined && lagMs > limits.maxRecorderLagMs) {
        stats.refused.recorderLag++;
        return new Overloaded(
          `The status recorder is ${Math.round(lagMs / 1000)} s behind, past FLOWD_RECORDER_MAX_LAG_MS (${limits.maxRecorderLagMs} ms); creates are refused until it catches up (add worker capacity or check the workers' logs), retry after ${RETRY_AFTER_SECONDS} s.`,
        );
      }
      if (stats.inFlight >= limits.maxCreates) {
        stats.refused.creates++;
        return new Overloaded(
          `The API is at its limit of ${limits.maxCreates} creates in flight (FLOWD_MAX_CREATES_IN_FLIGHT); retry after ${RETRY_AFTER_SECONDS} s.`,
        );
      }
      if (stats.inFlight > 0 && stats.bytesInFlight + bytes > limits.maxBytes) {
        stats.refused.bytes++;
        return new Overloaded(
          `The API is at its limit of ${limits.maxBytes} bytes of create bodies in flight (FLOWD_MAX_CREATE_BYTES_IN_FLIGHT); retry after ${RETRY_AFTER_SECONDS} s.`,
        );
      }
      stats.inFlight++;
      stats.bytesInFlight += bytes;
      stats.admitted++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        stats.inFlight--;
        stats.bytesInFlight -= bytes;
      };
    },
  };
}
export type Admission = ReturnType<typeof createAdmission>;
