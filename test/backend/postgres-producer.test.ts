import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { addAfter, createProducer, splitPayload, type Producer } from "../../src/queues";
import { openPgQueues, type PgQueues } from "../../src/pg-queues";
import { createLogger } from "../../src/log";
import { createTestDatabase } from "../helpers/db";

// On the Postgres backend there is no MULTI to hold back: the backend's adds wait for the gate
// themselves, so no job reaches BullMQ's tables before flowd's rows commit, and none if they fail.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pg: PgQueues;
let producer: Producer;
beforeAll(async () => {
  db = await createTestDatabase();
  pg = await openPgQueues({ databaseUrl: db.url, queueSchema: "bullmq" }, createLogger("silent"));
  producer = createProducer(pg, { prefix: "flowd", eventStreamMaxLen: 100_000, shards: 1 });
});
afterAll(async () => {
  await producer?.close();
  await pg?.close();
  await db?.drop();
});

const tree = (id: string) => ({
  name: "echo",
  queueName: "flows",
  data: {},
  opts: { jobId: id },
  children: [{ name: "echo", queueName: "flows", data: {}, opts: { jobId: `${id}-child` } }],
});

function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { promise, open, fail };
}

const state = (id: string) => producer.at(null).queue("flows").getJobState(id);

describe("addAfter on the Postgres backend", () => {
  test("the add waits for the gate; adds outside a gate go through meanwhile", async () => {
    const g = gate();
    let settled = false;
    const adding = addAfter(g.promise, () => producer.at(null).flowProducer.add(tree("a1"))).finally(() => (settled = true));
    await producer.at(null).flowProducer.add({ name: "echo", queueName: "flows", data: {}, opts: { jobId: "ungated" } });
    expect(await state("ungated")).toBe("waiting");
    expect(await state("a1")).toBe("unknown");
    expect(await state("a1-child")).toBe("unknown");
    expect(settled).toBe(false);
    g.open();
    await adding;
    expect(await state("a1")).toBe("waiting-children");
    expect(await state("a1-child")).toBe("waiting");
  });

  test("a failed gate adds nothing and fails the add with the gate's error", async () => {
    const g = gate();
    const adding = addAfter(g.promise, () => producer.at(null).flowProducer.add(tree("b1")));
    g.fail(new Error("the rows did not commit"));
    await expect(adding).rejects.toThrow("the rows did not commit");
    const [row] = await db.database.sql`select count(*)::int as n from bullmq.job where id like 'b1%'`;
    expect(row!.n).toBe(0);
  });

  test("a single queue's add waits too", async () => {
    const g = gate();
    const adding = addAfter(g.promise, () => producer.at(null).queue("jobs").add("echo", {}, { jobId: "s1" }));
    expect(await producer.at(null).queue("jobs").getJobState("s1")).toBe("unknown");
    g.open();
    await adding;
    expect(await producer.at(null).queue("jobs").getJobState("s1")).toBe("waiting");
  });

  test("the queues keep every event until flowd records it (maxLenEvents 0)", async () => {
    const [row] = await db.database.sql`select value from bullmq.meta where queue = 'flows' and field = 'opts.maxLenEvents'`;
    expect(row?.value).toBe("0");
  });
});

describe("kept children's results on the Postgres backend", () => {
  test("a job added with kept results has them as processed children from its insert on; installing twice at once is fine", async () => {
    // Two more processes starting together on the same schema install the trigger again.
    const again = await Promise.all([1, 2].map(() => openPgQueues({ databaseUrl: db.url, queueSchema: "bullmq" }, createLogger("silent"))));
    await Promise.all(again.map((q) => q.close()));
    const flowd = { kept: { c1: { rows: 7 }, c2: null }, keptQueues: { c1: "ext", c2: "flows" } };
    await producer.at(null).queue("jobs").add("echo", {}, { jobId: "k1", flowd } as never);
    const job = await producer.at(null).queue("jobs").getJob("k1");
    expect(await job!.getChildrenValues()).toEqual({ "ext:c1": { rows: 7 }, "flows:c2": null });
    // A job without them gets none.
    await producer.at(null).queue("jobs").add("echo", {}, { jobId: "k2" });
    expect(await (await producer.at(null).queue("jobs").getJob("k2"))!.getChildrenValues()).toEqual({});
  });
});

describe("signals over NOTIFY", () => {
  test("a long list of ids is cut at commas below Postgres' payload limit, losing none", () => {
    const ids = Array.from({ length: 2_000 }, (_, i) => `job-${i}-${"x".repeat(i % 30)}`);
    const parts = splitPayload(ids.join(","));
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(7_000);
    expect(parts.join(",").split(",")).toEqual(ids);
    expect(splitPayload("12345")).toEqual(["12345"]);
  });

  test("a cancel rung through the producer reaches a LISTEN on the channel", async () => {
    const got: string[] = [];
    const listening = await db.database.sql.listen("flowd:flowd:cancel", (m) => got.push(m));
    try {
      const ids = Array.from({ length: 1_500 }, (_, i) => `cancel-me-${i}`);
      await producer.signal("flowd:flowd:cancel", ids.join(","));
      const deadline = Date.now() + 10_000;
      while (got.join(",").split(",").length < ids.length && Date.now() < deadline) await Bun.sleep(20);
      expect(got.length).toBeGreaterThan(1);
      expect(got.join(",").split(",")).toEqual(ids);
    } finally {
      await listening.unlisten();
    }
  });
});
