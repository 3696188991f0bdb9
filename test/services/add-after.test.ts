import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { addAfter, createProducer, type Producer } from "../../src/queues";
import { createRedis } from "../../src/redis";
import { REDIS_URL } from "../helpers/services";
import { countKeys, deletePrefix, uniquePrefix } from "../helpers/redis";
import type { Redis } from "ioredis";

// A create prepares its Redis add while Postgres commits the rows; these pin down that the add is
// sent only after the commit, never without it, and that other commands are not held up.
const prefix = uniquePrefix("gate");
let redis: Redis;
let producer: Producer;
beforeAll(() => {
  redis = createRedis(REDIS_URL, "request", "gate-test");
  producer = createProducer(redis, { prefix, eventStreamMaxLen: 100_000, shards: 1 });
});
afterAll(async () => {
  await producer.close();
  redis.disconnect();
  await deletePrefix(prefix);
});

const tree = (id: string) => ({
  name: "echo",
  queueName: "flows",
  data: {},
  opts: { jobId: id },
  children: [{ name: "echo", queueName: "flows", data: {}, opts: { jobId: `${id}-child` } }],
});

/** A promise and the means to settle it from outside. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { promise, open, fail };
}

describe("addAfter", () => {
  test("builds the add at once but sends it only when the gate opens", async () => {
    const g = gate();
    let settled = false;
    const adding = addAfter(g.promise, () => producer.at(null).flowProducer.add(tree("a1"))).finally(() => (settled = true));
    // Other commands on the same connection, and adds outside a gate, go through meanwhile.
    await producer.at(null).flowProducer.add({ name: "echo", queueName: "flows", data: {}, opts: { jobId: "ungated" } });
    expect(await producer.at(null).queue("flows").getJobState("ungated")).toBe("waiting");
    expect(await producer.at(null).queue("flows").getJobState("a1")).toBe("unknown");
    expect(await producer.at(null).queue("flows").getJobState("a1-child")).toBe("unknown");
    expect(settled).toBe(false);

    g.open();
    await adding;
    expect(await producer.at(null).queue("flows").getJobState("a1")).toBe("waiting-children");
    expect(await producer.at(null).queue("flows").getJobState("a1-child")).toBe("waiting");
  });

  test("sends nothing when the gate fails, and fails the add with the gate's error", async () => {
    const before = await countKeys(prefix);
    const g = gate();
    const adding = addAfter(g.promise, () => producer.at(null).flowProducer.add(tree("b1")));
    g.fail(new Error("the insert failed"));
    await expect(adding).rejects.toThrow("the insert failed");
    expect(await producer.at(null).queue("flows").getJobState("b1")).toBe("unknown");
    expect(await countKeys(prefix)).toBe(before);
    // The connection is still good for the next add.
    await addAfter(Promise.resolve(), () => producer.at(null).flowProducer.add(tree("b2")));
    expect(await producer.at(null).queue("flows").getJobState("b2-child")).toBe("waiting");
  });

  test("concurrent adds each wait for their own gate", async () => {
    const first = gate();
    const second = gate();
    const a = addAfter(first.promise, () => producer.at(null).flowProducer.add(tree("c1")));
    const b = addAfter(second.promise, () => producer.at(null).flowProducer.add(tree("c2")));
    second.open();
    await b;
    expect(await producer.at(null).queue("flows").getJobState("c2")).toBe("waiting-children");
    expect(await producer.at(null).queue("flows").getJobState("c1")).toBe("unknown");
    first.open();
    await a;
    expect(await producer.at(null).queue("flows").getJobState("c1")).toBe("waiting-children");
  });
});
