import { describe, expect, test } from "bun:test";
import { describeUnstorable, findUnstorable } from "../src/unstorable";

describe("findUnstorable", () => {
  const cases: [title: string, json: string, found: ReturnType<typeof findUnstorable>][] = [
    ["a clean object", String.raw`{"a":[1,"x",{"b":null,"c":true}],"é":"\ud83d\ude00"}`, undefined],
    ["a lone surrogate at the top", String.raw`"\ud800"`, { path: "/", problem: "surrogate" }],
    ["Infinity at the top", "1e999", { path: "/", problem: "not_finite" }],
    ["NUL in a nested value", String.raw`{"a":{"b":["ok","x\u0000"]}}`, { path: "/a/b/1", problem: "nul" }],
    ["a surrogate in a key", String.raw`{"a":{"\udfff":1}}`, { path: "/a/\udfff", problem: "surrogate" }],
    ["~ and / in keys are escaped", String.raw`{"a/b":{"c~d":-1e999}}`, { path: "/a~1b/c~0d", problem: "not_finite" }],
    ["the first of several, depth first", String.raw`{"a":[{"b":"\ud800"}],"c":"\u0000"}`, { path: "/a/0/b", problem: "surrogate" }],
  ];
  for (const [title, json, found] of cases)
    test(title, () => {
      expect(findUnstorable(JSON.parse(json))).toEqual(found);
    });

  test("each problem reads as a sentence naming the path", () => {
    for (const problem of ["nul", "surrogate", "not_finite"] as const) expect(describeUnstorable({ path: "/x/y", problem })).toMatch(/^[A-Z].*\bat \/x\/y([ ,;].*)?\.$/);
  });

  test("costs about one JSON.parse on a 1 MiB body of small objects", () => {
    const children = Array.from({ length: 11000 }, (_, i) => ({ name: "echo", data: { i, s: "hello world", n: [1, 2.5, { k: "v" }] }, opts: { attempts: 3 } }));
    const text = JSON.stringify({ name: "x", root: { name: "echo", children } });
    const value = JSON.parse(text);
    const time = (fn: () => void) => {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) fn();
      return (performance.now() - t0) / 10;
    };
    time(() => findUnstorable(value));
    const parse = time(() => JSON.parse(text));
    const walk = time(() => findUnstorable(value));
    console.log(`${(text.length / 1048576).toFixed(2)} MiB: JSON.parse ${parse.toFixed(2)} ms, findUnstorable ${walk.toFixed(2)} ms`);
    expect(text.length).toBeGreaterThan(1 << 20);
    // Loose on a shared machine: the point is the order of magnitude.
    expect(walk).toBeLessThan(Math.max(50, parse * 10));
  });
});
