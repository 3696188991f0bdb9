import { describe, expect, test } from "bun:test";
import { InvalidInput } from "../../src/errors";
import { createHandlerRegistry } from "../../src/services/handler-registry";
import { planFlow } from "../../src/services/flow-spec";

const config = { flowQueues: ["flows"], externalQueues: ["py"], maxFlowJobs: 100, maxFlowDepth: 5 };
const refusal = (fn: () => unknown): InvalidInput => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidInput) return err;
    throw err;
  }
  throw new Error("accepted");
};

describe("validating against the registry", () => {
  const registry = createHandlerRegistry(config);
  registry.load([
    { queue: "flows", name: "resize", source: "module", dataSchema: { type: "object", required: ["w"], properties: { w: { type: "integer", minimum: 1 } } } },
    { queue: "jobs", name: "free", source: "module", dataSchema: null },
  ]);

  test("a registered handler's data is checked with its schema, naming the path", () => {
    expect(() => registry.check("flows", { name: "resize", data: { w: 2 } }, "/root")).not.toThrow();
    const bad = refusal(() => registry.check("flows", { name: "resize", data: { w: 0 } }, "/root"));
    expect(bad.code).toBe("invalid_job_data");
    expect(bad.details).toEqual([{ path: "/root/data/w", message: expect.stringContaining("must be >= 1") }]);
    expect(refusal(() => registry.check("flows", { name: "resize", data: {} }, "")).details).toEqual([{ path: "/data/w", message: expect.any(String) }]);
  });

  test("a name is known only on the queue its workers registered it for", () => {
    const err = refusal(() => registry.check("jobs", { name: "resize" }, ""));
    expect(err.code).toBe("unknown_handler");
    expect(err.message).toContain("no worker consuming 'jobs' has registered it");
    expect(() => registry.check("jobs", { name: "free", data: { anything: [1] } }, "")).not.toThrow();
    expect(() => registry.check("jobs", { name: "echo" }, "")).not.toThrow();
  });

  test("an external queue takes any name with any JSON object", () => {
    expect(() => registry.check("py", { name: "whatever.you-like", data: { a: 1 } }, "")).not.toThrow();
    expect(refusal(() => registry.check("py", { name: "x", data: [1] as never }, "")).code).toBe("invalid_job_data");
  });

  test("a flow may mix queues; an unknown queue is refused", () => {
    const planned = planFlow({ name: "resize", data: { w: 1 }, children: [{ name: "ocr", queue: "py" }] }, config, registry);
    expect(planned.map((p) => p.queueName)).toEqual(["flows", "py"]);
    expect(refusal(() => planFlow({ name: "echo", queue: "nope" }, config, registry)).code).toBe("unknown_queue");
  });

  test("reloading keeps compiled schemas and drops what is gone", () => {
    registry.load([]);
    expect(refusal(() => registry.check("flows", { name: "resize", data: { w: 2 } }, "")).code).toBe("unknown_handler");
  });
});
