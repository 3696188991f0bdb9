import { describe, expect, test } from "bun:test";
import { answerError, MAX_RETRY_AFTER_MS, parseRetryAfter, RetryLater } from "../../src/handlers/http";
import { PermanentFailure } from "../../src/handlers/types";
import { webhookBackoff } from "../../src/services/webhooks";

describe("what an http task's answer means", () => {
  test("4xx fails for good except 408, 409 and 429; 5xx is retried", () => {
    for (const status of [400, 401, 403, 404, 410, 413, 422]) expect(answerError("x", status, null)).toBeInstanceOf(PermanentFailure);
    for (const status of [408, 409, 429, 500, 502, 503, 504, 302]) {
      const err = answerError("x", status, null);
      expect(err).not.toBeInstanceOf(PermanentFailure);
      expect(err).not.toBeInstanceOf(RetryLater);
    }
  });

  test("Retry-After on 429 and 503, as seconds or a date, bounded at an hour; elsewhere or unreadable it is ignored", () => {
    const now = Date.parse("2026-12-03T10:00:00Z");
    expect((answerError("x", 429, "2", now) as RetryLater).afterMs).toBe(2000);
    expect((answerError("x", 503, "Thu, 03 Dec 2026 10:00:30 GMT", now) as RetryLater).afterMs).toBe(30_000);
    expect((answerError("x", 429, "86400", now) as RetryLater).afterMs).toBe(MAX_RETRY_AFTER_MS);
    expect(answerError("x", 500, "2", now)).not.toBeInstanceOf(RetryLater);
    expect(answerError("x", 429, "soon", now)).not.toBeInstanceOf(RetryLater);
    expect(parseRetryAfter("Thu, 03 Dec 2026 09:00:00 GMT", now)).toBe(0);
  });
});

describe("the webhook retry schedule", () => {
  test("each retry takes its entry with ±10% jitter, and the last entry repeats past the end", () => {
    const schedule = [5_000, 300_000, 1_800_000];
    expect(webhookBackoff(schedule, () => 0)(1)).toBe(4_500);
    expect(webhookBackoff(schedule, () => 1)(1)).toBe(5_500);
    expect(webhookBackoff(schedule, () => 0.5)(2)).toBe(300_000);
    expect(webhookBackoff(schedule, () => 0.5)(9)).toBe(1_800_000);
  });
});
