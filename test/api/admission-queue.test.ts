import { describe, expect, test } from "bun:test";
import { createAdmission, MIN_JOB_BYTES, Overloaded, type AdmissionLimits, type Ticket } from "../../src/api/admission";
import { jobsInBody } from "../../src/api/plugins/admission";

// The rule alone, in this process: no HTTP, so every step is observable and timed by the test.
const limits: AdmissionLimits = { maxCreates: 2, maxBytes: 1000, maxJobs: 1_000_000, bodyLimit: 600, maxJobsPerCreate: 1000, waitMs: 0, maxWaiters: 10 };

const ticket = (x: unknown): Ticket => {
  if (x instanceof Overloaded || x instanceof Promise) throw new Error(`expected a ticket at once, got ${x}`);
  return x as Ticket;
};

/** Whether a promise has settled yet, without waiting for it. */
async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await Bun.sleep(0);
  return done;
}

describe("the admission bounds", () => {
  test("refuses past the count of creates in flight (no wait), and lets one in again once a place is back", () => {
    const a = createAdmission(limits);
    const first = ticket(a.admit(10));
    ticket(a.admit(10));
    const third = a.admit(10);
    expect(third).toBeInstanceOf(Overloaded);
    expect((third as Overloaded).status).toBe(503);
    expect((third as Overloaded).code).toBe("overloaded");
    expect((third as Overloaded).headers["retry-after"]).toBe("1");
    expect((third as Overloaded).message).toContain("limit of 2 creates in flight");
    first.release();
    first.release(); // a second release gives nothing back twice
    expect(a.stats).toMatchObject({ inFlight: 1, bytesInFlight: 10, refused: { creates: 1, bytes: 0 } });
    ticket(a.admit(10));
  });

  test("refuses past the bytes in flight; unknown lengths count as the body limit until read; a lone create always enters", () => {
    const a = createAdmission(limits);
    const unknown = ticket(a.admit(undefined));
    expect(a.stats.bytesInFlight).toBe(600);
    expect(a.admit(500)).toBeInstanceOf(Overloaded);
    expect(a.stats.refused.bytes).toBe(1);
    ticket(a.admit(400));
    unknown.release();
    const b = createAdmission({ ...limits, maxBytes: 100, maxJobs: 1 });
    const alone = ticket(b.admit(600)); // over maxBytes and maxJobs, but alone: admitted
    expect(b.admit(1)).toBeInstanceOf(Overloaded);
    alone.release();
    const c = createAdmission({ ...limits, maxBytes: 100 });
    const chunked = ticket(c.admit(undefined));
    expect(c.stats.bytesInFlight).toBe(600);
    expect(c.admit(50)).toBeInstanceOf(Overloaded);
    chunked.settle({ jobs: 1, bytes: 40 }); // read: 40 bytes
    expect(c.stats.bytesInFlight).toBe(40);
    ticket(c.admit(50));
  });

  test("jobs are estimated from the declared length (at most a create's maximum), and settle down to the parsed count", () => {
    const a = createAdmission({ ...limits, maxCreates: 100, maxBytes: 1_000_000, bodyLimit: 1_000_000, maxJobs: 1500 });
    const small = ticket(a.admit(130));
    expect(a.stats.jobsInFlight).toBe(Math.ceil(130 / MIN_JOB_BYTES));
    const big = ticket(a.admit(500_000)); // could hold 38,000 jobs; no create may hold more than 1,000
    expect(a.stats.jobsInFlight).toBe(10 + 1000);
    expect(a.admit(13_000)).toBeInstanceOf(Overloaded);
    expect(a.stats.refused.jobs).toBe(1);
    big.settle({ jobs: 3, bytes: 500_000 });
    big.settle({ jobs: 900, bytes: 600_000 }); // never raised again
    expect(a.stats.jobsInFlight).toBe(10 + 3);
    expect(a.stats.bytesInFlight).toBe(130 + 500_000);
    small.release();
    big.release();
    expect(a.stats).toMatchObject({ inFlight: 0, bytesInFlight: 0, jobsInFlight: 0 });
  });

  test("counting a parsed body: a flow's nodes, a bulk's items, one otherwise, and one for shapes validation will refuse", () => {
    const flow = { name: "f", root: { name: "a", children: [{ name: "b" }, { name: "c", children: [{ name: "d" }] }] } };
    expect(jobsInBody("/v1/flows", flow)).toBe(4);
    expect(jobsInBody("/v1/jobs/bulk", { jobs: [{}, {}, {}] })).toBe(3);
    expect(jobsInBody("/v1/jobs", { name: "echo" })).toBe(1);
    expect(jobsInBody("/v1/flows", { root: { children: "x" } })).toBe(1);
    expect(jobsInBody("/v1/flows", null)).toBe(1);
    expect(jobsInBody("/v1/jobs/bulk", { jobs: 7 })).toBe(1);
  });
});

describe("waiting for room", () => {
  const waiting = { ...limits, maxCreates: 1, waitMs: 5000 };

  test("waiters go in first come, first served as places come back", async () => {
    const a = createAdmission(waiting);
    const holder = ticket(a.admit(10));
    const order: number[] = [];
    const waits = [0, 1, 2].map((i) => Promise.resolve(a.admit(10)).then((t) => (order.push(i), t)));
    expect(a.stats.waiting).toBe(3);
    // A newcomer queues behind them even though it is no bigger.
    const late = Promise.resolve(a.admit(1)).then((t) => (order.push(3), t));
    holder.release();
    const first = ticket(await waits[0]);
    expect(await settled(waits[1]!)).toBe(false);
    first.release();
    ticket(await waits[1]).release();
    ticket(await waits[2]).release();
    ticket(await late).release();
    expect(order).toEqual([0, 1, 2, 3]);
    expect(a.stats).toMatchObject({ inFlight: 0, waiting: 0, admitted: 5, waited: 4 });
  });

  test("a released place wakes the next waiter at once; a settled estimate lets in those that now fit", async () => {
    const a = createAdmission({ ...waiting, maxCreates: 10, maxJobs: 100, bodyLimit: 100_000, maxBytes: 100_000 });
    const big = ticket(a.admit(1300)); // estimated 100 jobs: the whole budget
    const next = a.admit(130);
    expect(next).toBeInstanceOf(Promise);
    const t0 = performance.now();
    big.settle({ jobs: 3, bytes: 1300 }); // parsed: 3 jobs, so 10 more fit
    ticket(await next).release();
    expect(performance.now() - t0).toBeLessThan(100);
    big.release();
  });

  test("the wait has a deadline: 503 overloaded with Retry-After, naming the bound and the wait", async () => {
    const a = createAdmission({ ...waiting, waitMs: 150 });
    const holder = ticket(a.admit(10));
    const t0 = performance.now();
    const refused = await a.admit(10);
    const waited = performance.now() - t0;
    expect(refused).toBeInstanceOf(Overloaded);
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(waited).toBeLessThan(2000);
    const e = refused as Overloaded;
    expect([e.status, e.code, e.headers["retry-after"]]).toEqual([503, "overloaded", "1"]);
    expect(e.message).toContain("limit of 1 creates in flight (FLOWD_MAX_CREATES_IN_FLIGHT) and no room came within 150 ms (FLOWD_ADMISSION_WAIT_MS)");
    expect(a.stats).toMatchObject({ waiting: 0, refused: { creates: 1 } });
    holder.release();
    expect(a.stats.inFlight).toBe(0);
  });

  test("a client that goes away while waiting gives up its place, and the next waiter moves up", async () => {
    const a = createAdmission(waiting);
    const holder = ticket(a.admit(10));
    const gone = new AbortController();
    const first = a.admit(10, () => gone.signal);
    const second = a.admit(10);
    gone.abort();
    expect(await first).toBeInstanceOf(Overloaded);
    expect(a.stats).toMatchObject({ waiting: 1, abandoned: 1 });
    holder.release();
    ticket(await second).release();
    expect(a.stats).toMatchObject({ inFlight: 0, waiting: 0, admitted: 2, refused: { creates: 0 } });
  });

  test("the number of waiters is bounded: past it, 503 at once", async () => {
    const a = createAdmission({ ...waiting, maxWaiters: 2 });
    const holder = ticket(a.admit(10));
    const waits = [a.admit(10), a.admit(10)];
    const flood = a.admit(10);
    expect(flood).toBeInstanceOf(Overloaded);
    expect((flood as Overloaded).message).toContain("2 creates already wait for room (FLOWD_ADMISSION_MAX_WAITERS)");
    expect(a.stats.refused.waiters).toBe(1);
    holder.release();
    for (const w of waits) ticket(await w).release();
  });

  test("a lone create is admitted at once whatever its size, even when the one before it waited", async () => {
    const a = createAdmission({ ...waiting, maxCreates: 10, maxBytes: 100, maxJobs: 5 });
    const huge = ticket(a.admit(600));
    const alsoHuge = a.admit(600);
    expect(alsoHuge).toBeInstanceOf(Promise);
    huge.release();
    ticket(await alsoHuge).release();
    expect(a.stats).toMatchObject({ inFlight: 0, jobsInFlight: 0, bytesInFlight: 0, waited: 1 });
  });

  test("the recorder-lag refusal does not wait", () => {
    const a = createAdmission({ ...waiting, recorderLagMs: () => 90_000, maxRecorderLagMs: 60_000 });
    const refused = a.admit(10);
    expect(refused).toBeInstanceOf(Overloaded);
    expect((refused as Overloaded).message).toContain("FLOWD_RECORDER_MAX_LAG_MS");
    expect(a.stats.refused.recorderLag).toBe(1);
  });
});
