import { describe, expect, test } from "bun:test";
import { findRefs, pointerTokens, resolveRefs, schemaAllows } from "../../src/services/input-refs";
import { CATCH_UP_MAX, missedFirings } from "../../src/services/schedule-runs";

describe("$input references", () => {
  test("pointers: RFC 6901 escapes, the whole input, array indexes; anything else is not a pointer", () => {
    expect(pointerTokens("")).toEqual([]);
    expect(pointerTokens("/a~1b/c~0d/0")).toEqual(["a/b", "c~d", "0"]);
    expect(pointerTokens("a")).toBeUndefined();
    expect(pointerTokens("/a~2")).toBeUndefined();
    expect(() => findRefs({ x: { $input: 5 } }, "/d")).toThrow(/JSON Pointer/);
    expect(findRefs({ x: [{ $input: "/a" }], y: { $input: "/b", other: 1 } }, "/d")).toEqual([{ pointer: "/a", path: "/d/x/0" }]);
  });

  test("a reference is replaced whole by what it selects; strings are not interpolated; a missing value names the pointer", () => {
    const input = { a: { "b/c": [10, { d: null }] }, n: 0 };
    const data = { one: { $input: "/a/b~1c/0" }, null: { $input: "/a/b~1c/1/d" }, all: { $input: "" }, text: "${/n}", deep: [{ k: { $input: "/n" } }] };
    expect(resolveRefs(data, input, "/d")).toEqual({ one: 10, null: null, all: input, text: "${/n}", deep: [{ k: 0 }] });
    expect(() => resolveRefs({ x: { $input: "/a/b~1c/2" } }, input, "/d")).toThrow(/nothing at \/a\/b~1c\/2, which \/d\/x/);
    expect(() => resolveRefs({ x: { $input: "/a/b~1c/01" } }, input, "/d")).toThrow(/nothing at/);
    expect(() => resolveRefs({ x: { $input: "/toString" } }, input, "/d")).toThrow(/nothing at/);
  });

  test("a pointer into a property the schema closes off is refused; open or unknown shapes allow it", () => {
    const schema = { type: "object", properties: { a: { type: "object", properties: { b: {} }, additionalProperties: false }, list: { type: "array", items: { type: "object", additionalProperties: false } } } };
    expect(schemaAllows(schema, "/a/b")).toBe(true);
    expect(schemaAllows(schema, "/a/c")).toBe(false);
    expect(schemaAllows(schema, "/zzz/anything")).toBe(true);
    expect(schemaAllows(schema, "/list/0/x")).toBe(false);
    expect(schemaAllows({ anyOf: [{}] }, "/x")).toBe(true);
  });
});

describe("missed firings (catchUp)", () => {
  test("every: the firings after the late one up to now, the latest CATCH_UP_MAX of them", () => {
    const every = { every: 1000, pattern: null, tz: null };
    expect(missedFirings(every, 10_000, 10_999)).toEqual([]);
    expect(missedFirings(every, 10_000, 13_500)).toEqual([11_000, 12_000, 13_000]);
    const long = missedFirings(every, 0, 1_000_000);
    expect(long.length).toBe(CATCH_UP_MAX);
    expect(long.at(-1)).toBe(1_000_000);
  });

  test("cron: the same, from the pattern", () => {
    const cron = { every: null, pattern: "*/10 * * * * *", tz: "UTC" };
    const due = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(missedFirings(cron, due, due + 35_000)).toEqual([due + 10_000, due + 20_000, due + 30_000]);
    expect(missedFirings(cron, due, due + 3600_000).length).toBe(CATCH_UP_MAX);
  });
});
