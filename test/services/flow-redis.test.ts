import { describe, expect, test } from "bun:test";
import { buildRedisTrees, resumeOptions, type EnqueueRow, type FlowdFlowJob } from "../../src/services/flow-redis";
import { readJob } from "../../src/services/job-envelope";

const row = (id: string, parentId: string | null, status: string, opts: EnqueueRow["opts"] = {}): EnqueueRow => ({
  id,
  jobId: `j-${id}`,
  parentId,
  name: "echo",
  queueName: "flows",
  shard: null,
  data: { id },
  opts,
  status,
  result: status === "completed" ? { from: id } : null,
  attemptsMade: 0,
  attemptsBase: 0,
  readyAt: null,
  createdAt: new Date(0),
  parkedUntil: null,
});

describe("building the Redis trees of a flow's rows", () => {
  test("completed children ride along as kept results; only the rows being added become jobs; data is the user's", () => {
    const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "completed"), row("b", "r", "pending")]);
    expect(tree!.opts!.jobId).toBe("j-r");
    expect(tree!.kept).toEqual({ "j-a": { queue: "flows", result: { from: "a" } } });
    expect(tree!.data).toEqual({ id: "r" });
    expect(tree!.opts.flowd).toEqual({ parent: true });
    expect(tree!.children![0]!.data).toEqual({ id: "b" });
    expect(tree!.children!.map((c) => c.opts!.jobId)).toEqual(["j-b"]);
  });

  test("children still live in Redis are attached under their own ids, not added as new work; their own children are left alone", () => {
    const rows = [
      row("r", null, "pending"),
      row("f", "r", "pending"),
      row("p", "r", "active"),
      row("w", "r", "waiting-children"),
      row("w1", "w", "active"),
      row("d", "r", "delayed", { ignoreDependencyOnFailure: true }),
      row("c", "r", "completed"),
    ];
    const [tree] = buildRedisTrees(rows);
    const children = tree!.children! as FlowdFlowJob[];
    expect(children.map((c) => [c.opts.jobId, c.attached ?? false])).toEqual([["j-f", false], ["j-p", true], ["j-w", true], ["j-d", true]]);
    // Only the id, the queue and the failure policy reach BullMQ, which keeps the existing job as it is.
    for (const live of children.slice(1)) expect(live.children).toBeUndefined();
    expect(children[1]!.opts.failParentOnFailure).toBe(true);
    expect(children[3]!.opts.failParentOnFailure).toBeUndefined();
    expect(children[3]!.opts.ignoreDependencyOnFailure).toBe(true);
    expect(tree!.kept).toEqual({ "j-c": { queue: "flows", result: { from: "c" } } });
    // A new flow (every row added) attaches nothing.
    expect(JSON.stringify(buildRedisTrees(rows.map((r) => ({ ...r, status: "pending" }))))).not.toContain("attached");
  });

  test("a child that failed under the default policy makes its parent fail, as BullMQ would", () => {
    const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "failed"), row("b", "r", "pending")]);
    expect(tree!.opts.flowd!.failedChild).toBe("j-a");
  });

  test("a child that failed under another policy does not", () => {
    for (const policy of ["ignoreDependencyOnFailure", "continueParentOnFailure", "removeDependencyOnFailure"]) {
      const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "failed", { [policy]: true })]);
      expect(tree!.opts.flowd!.failedChild).toBeUndefined();
    }
  });

  test("a job reads its data and bookkeeping; a job added before the move, or by another tool, still reads", () => {
    expect(readJob({ data: { data: { x: 1 } }, opts: { flowd: { parent: true } } as never })).toEqual({ data: { data: { x: 1 } }, meta: { parent: true } });
    expect(readJob({ data: { data: { x: 1 }, attemptsBefore: 2 }, opts: {} })).toEqual({ data: { x: 1 }, meta: { attemptsBefore: 2 } });
    expect(readJob({ data: { y: 2 }, opts: {} })).toEqual({ data: { y: 2 }, meta: { parent: true } });
  });
});

describe("adding a job Redis lost again (resumeOptions)", () => {
  const now = 1_000_000;
  const lost = (over: Partial<EnqueueRow>): EnqueueRow => ({ ...row("x", null, "waiting"), createdAt: new Date(now - 3_000), ...over });

  test("a delayed job keeps what is left of its delay: from its recorded ready time, else created + delay", () => {
    expect(resumeOptions(lost({ status: "delayed", opts: { delay: 6_000 } }), now).opts.delay).toBe(3_000);
    expect(resumeOptions(lost({ status: "delayed", opts: { delay: 6_000 }, readyAt: new Date(now + 1_234) }), now).opts.delay).toBe(1_234);
    // Past due: at once, never a fresh delay.
    expect(resumeOptions(lost({ status: "delayed", opts: { delay: 1_000 } }), now).opts.delay).toBe(0);
  });

  test("a job that was ready or running runs at once; one waiting for children keeps its delay for later", () => {
    expect(resumeOptions(lost({ status: "waiting", opts: { delay: 6_000 } }), now).opts.delay).toBe(0);
    expect(resumeOptions(lost({ status: "active", opts: { delay: 6_000 }, attemptsMade: 1 }), now).opts.delay).toBe(0);
    expect(resumeOptions(lost({ status: "waiting-children", opts: { delay: 6_000 } }), now).opts.delay).toBe(6_000);
  });

  test("ended attempts of this run are carried and taken off opts.attempts; the lost running attempt is not", () => {
    // In its backoff after two failed attempts of a run that began after one earlier attempt (a retry).
    const backoff = resumeOptions(lost({ status: "delayed", opts: { attempts: 5 }, attemptsBase: 1, attemptsMade: 3, readyAt: new Date(now) }), now);
    expect(backoff.opts.attempts).toBe(3);
    expect(backoff.meta).toEqual({ attemptsBefore: 3, attemptsCarried: 2 });
    // Parked in its first attempt: that attempt goes on, nothing is carried.
    const parked = resumeOptions(lost({ status: "active", opts: { attempts: 2 }, attemptsMade: 1, parkedUntil: new Date(now + 60_000) }), now);
    expect(parked.opts.attempts).toBe(2);
    expect(parked.meta).toEqual({ resumesParked: true });
    // No attempts option: none is set, so BullMQ's default stays.
    expect(resumeOptions(lost({}), now).opts).toEqual({ delay: 0 });
  });
});
