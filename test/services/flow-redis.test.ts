import { describe, expect, test } from "bun:test";
import { buildRedisTrees, type EnqueueRow } from "../../src/services/flow-redis";
import type { JobEnvelope } from "../../src/services/job-envelope";

const row = (id: string, parentId: string | null, status: string, opts: EnqueueRow["opts"] = {}): EnqueueRow => ({
  id,
  jobId: `j-${id}`,
  parentId,
  name: "echo",
  queueName: "flows",
  data: { id },
  opts,
  status,
  result: status === "completed" ? { from: id } : null,
  attemptsMade: 0,
});

describe("building the Redis trees of a flow's rows", () => {
  test("completed children ride along as kept results; only the rows being added become jobs", () => {
    const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "completed"), row("b", "r", "pending")]);
    expect(tree!.opts!.jobId).toBe("j-r");
    expect((tree!.data as JobEnvelope).kept).toEqual({ "j-a": { from: "a" } });
    expect(tree!.children!.map((c) => c.opts!.jobId)).toEqual(["j-b"]);
  });

  test("a child that failed under the default policy makes its parent fail, as BullMQ would", () => {
    const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "failed"), row("b", "r", "pending")]);
    expect((tree!.data as JobEnvelope).failedChild).toBe("j-a");
  });

  test("a child that failed under another policy does not", () => {
    for (const policy of ["ignoreDependencyOnFailure", "continueParentOnFailure", "removeDependencyOnFailure"]) {
      const [tree] = buildRedisTrees([row("r", null, "pending"), row("a", "r", "failed", { [policy]: true })]);
      expect((tree!.data as JobEnvelope).failedChild).toBeUndefined();
    }
  });
});
