import { describe, expect, test } from "bun:test";
import { createGroupCommit } from "../../src/services/group-commit";

/** A write that takes `ms` and records each batch it was given. */
function recordingWrite(ms: number) {
  const batches: number[][] = [];
  const write = async (items: number[]) => {
    batches.push(items);
    await Bun.sleep(ms);
    return items.map((i) => i * 10);
  };
  return { batches, write };
}

describe("group commit", () => {
  test("a lone submit is written at once, alone", async () => {
    const { batches, write } = recordingWrite(1);
    const gc = createGroupCommit(write, { slots: 2, maxBatch: 100 });
    const started = performance.now();
    expect(await gc.submit(7)).toBe(70);
    expect(batches).toEqual([[7]]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test("submits arriving while the slots are busy share the next writes; each gets its own result", async () => {
    const { batches, write } = recordingWrite(20);
    const gc = createGroupCommit(write, { slots: 2, maxBatch: 100 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => gc.submit(i)));
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 10));
    // Two writes of one start at once; the other 48 wait for a slot and go in one or two writes.
    expect(batches.length).toBeLessThanOrEqual(4);
    expect(batches.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(gc.stats).toEqual({ writes: batches.length, items: 50 });
  });

  test("maxBatch bounds a write, and a failed write fails exactly its own submits", async () => {
    const batches: number[][] = [];
    const gc = createGroupCommit(
      async (items: number[]) => {
        batches.push(items);
        await Bun.sleep(5);
        if (items.includes(3)) throw new Error("write failed");
        return items;
      },
      { slots: 1, maxBatch: 2 },
    );
    const settled = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => gc.submit(i)));
    // 1 is written alone; 2–5 arrive meanwhile and go two at a time.
    expect(batches).toEqual([[1], [2, 3], [4, 5]]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled", "fulfilled"]);
  });
});
