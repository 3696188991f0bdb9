import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HandlerModuleError } from "../../src/errors";
import { loadHandlerModules } from "../../src/handlers/loader";
import { checkJson, runUserCode } from "../../src/workers/user-code";

const dir = mkdtempSync(join(tmpdir(), "flowd-handlers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const write = (source: string, ext = "ts") => {
  const file = join(dir, `m${++n}.${ext}`);
  writeFileSync(file, source);
  return file;
};
const QUEUES = ["flows", "jobs"];

async function refusal(paths: string[]): Promise<HandlerModuleError> {
  try {
    await loadHandlerModules(paths, QUEUES);
  } catch (err) {
    expect(err).toBeInstanceOf(HandlerModuleError);
    return err as HandlerModuleError;
  }
  throw new Error("loaded without a complaint");
}

describe("loading handler modules", () => {
  test("a module's handlers, with schema, description, queue and timeout; a folder stands for its modules", async () => {
    const folder = join(dir, "folder");
    mkdirSync(folder);
    writeFileSync(join(folder, "a.ts"), `export default { "sum.a": { run: (c: any) => c.data.a + c.data.b, data: { type: "object", required: ["a"], properties: { a: { type: "number" } } }, description: "adds", queue: "jobs", timeoutMs: 500 } };`);
    writeFileSync(join(folder, "b.js"), `export default { "b": { run() { return 1 } } };`);
    writeFileSync(join(folder, "types.d.ts"), `export {};`);
    const loaded = await loadHandlerModules([folder], QUEUES);
    expect(loaded.map((h) => h.name)).toEqual(["sum.a", "b"]);
    const [a, b] = loaded;
    expect(a).toMatchObject({ queues: ["jobs"], description: "adds", timeoutMs: 500, defaults: null });
    expect(a!.validate!({ a: 1 })).toBe(true);
    expect(a!.validate!({ a: "x" })).toBe(false);
    expect(b).toMatchObject({ queues: QUEUES, dataSchema: null, validate: null });
  });

  const cases: [string, () => string[], RegExp][] = [
    ["a missing file", () => [join(dir, "nope.ts")], /nope\.ts: no such file or folder$/],
    ["a module that throws on import", () => [write(`throw new Error("boom at import"); export default {};`)], /does not load: boom at import/],
    ["a syntax error", () => [write(`export default { a: { run() { return ( } } };`)], /does not load: /],
    ["a default export that is not an object", () => [write(`export default 42;`)], /default export must be an object.*number 42/],
    ["no default export", () => [write(`export const a = 1;`)], /default export must be an object.*undefined/],
    ["a handler without run", () => [write(`export default { "no-run": { data: {} } };`)], /handler 'no-run': run must be a function/],
    ["an invalid JSON Schema", () => [write(`export default { bad: { run() {}, data: { type: "nope" } } };`)], /handler 'bad': data is not a valid JSON Schema/],
    ["a name taken by a built-in", () => [write(`export default { echo: { run() {} } };`)], /handler 'echo': the name is taken by a built-in handler/],
    ["a name outside the pattern", () => [write(`export default { "Bad Name": { run() {} } };`)], /handler 'Bad Name': the name must match/],
    ["a queue the worker does not consume", () => [write(`export default { q: { run() {}, queue: "elsewhere" } };`)], /handler 'q': queue "elsewhere" is not one/],
    ["a bad timeout", () => [write(`export default { t: { run() {}, timeoutMs: -1 } };`)], /handler 't': timeoutMs must be/],
    ["a concurrency default of 0", () => [write(`export default { c: { run() {}, concurrency: { key: "k", limit: 0 } } };`)], /handler 'c': concurrency\.limit must be a whole number between 1 and 1000; got 0$/],
    ["a concurrency default that is not an object", () => [write(`export default { c: { run() {}, concurrency: "k" } };`)], /handler 'c': concurrency must be an object \{ key, limit \}; got "k"$/],
    ["a 200-character key", () => [write(`export default { c: { run() {}, concurrency: { key: "k".repeat(200), limit: 1 } } };`)], /handler 'c': concurrency\.key must be a string of 1 to 128 characters/],
    ["a rate limit beyond its maximum", () => [write(`export default { r: { run() {}, rateLimit: { key: "k", max: 100001, perMs: 1000 } } };`)], /handler 'r': rateLimit\.max must be a whole number between 1 and 100000/],
    ["a fractional expireAfterMs", () => [write(`export default { e: { run() {}, expireAfterMs: 1.5 } };`)], /handler 'e': expireAfterMs must be a whole number between 1 and 604800000; got 1\.5$/],
  ];
  for (const [what, paths, message] of cases)
    test(`refuses ${what}, naming the file and handler in one line`, async () => {
      const p = paths();
      const err = await refusal(p);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(p[0]!);
      expect(err.message).not.toContain("\n");
    });

  test("a handler's defaults for its jobs' opts, checked and kept (timeoutMs apart: the worker applies it)", async () => {
    const [h] = await loadHandlerModules(
      [write(`export default { d: { run() {}, timeoutMs: 50, concurrency: [{ key: "partner-api", limit: 5 }, { key: "all", limit: 50 }], rateLimit: { key: "partner-api", max: 10, perMs: 1000 }, expireAfterMs: 60000 } };`)],
      QUEUES,
    );
    expect(h!.timeoutMs).toBe(50);
    expect(h!.defaults).toEqual({ concurrency: [{ key: "partner-api", limit: 5 }, { key: "all", limit: 50 }], rateLimit: { key: "partner-api", max: 10, perMs: 1000 }, expireAfterMs: 60000 });
  });

  test("refuses a name two modules both use, naming both files", async () => {
    const first = write(`export default { twice: { run() {} } };`);
    const second = write(`export default { twice: { run() {} } };`);
    const err = await refusal([first, second]);
    expect(err.message).toContain(second);
    expect(err.message).toContain(`handler 'twice': the name is already used by ${first}`);
  });
});

describe("running user code", () => {
  const handler = (run: (ctx: any) => unknown, timeoutMs: number | null = null) =>
    ({ name: "h", file: "f", run, queues: QUEUES, dataSchema: null, validate: null, description: null, timeoutMs, defaults: null }) as const;
  const never = new AbortController().signal;

  test("a sync throw and a rejection become the attempt's error", async () => {
    await expect(runUserCode({ ...handler(() => { throw new Error("sync"); }) }, {}, never)).rejects.toThrow("sync");
    await expect(runUserCode({ ...handler(async () => Promise.reject(new Error("async"))) }, {}, never)).rejects.toThrow("async");
  });

  test("timeoutMs aborts the signal and fails the attempt even when the handler ignores it", async () => {
    let aborted = false;
    const started = Date.now();
    const run = (ctx: { signal: AbortSignal }) => {
      ctx.signal.addEventListener("abort", () => (aborted = true));
      return new Promise(() => {});
    };
    await expect(runUserCode({ ...handler(run, 50) }, {}, never)).rejects.toThrow("did not finish within its timeoutMs (50 ms)");
    expect(aborted).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("a cancel fails the attempt at once, and a late answer is dropped", async () => {
    const outer = new AbortController();
    const running = runUserCode({ ...handler(() => new Promise((r) => setTimeout(() => r("late"), 200))) }, {}, outer.signal);
    outer.abort(new Error("cancelled through the API"));
    await expect(running).rejects.toThrow("cancelled through the API");
  });

  test("results that are not JSON are refused with a clear error", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => checkJson({ n: 1n })).toThrow("'n' is a BigInt");
    expect(() => checkJson(cycle)).toThrow("it holds a cycle");
    expect(() => checkJson({ f: () => 1 })).toThrow("'f' is a function");
    expect(() => checkJson({ x: NaN })).toThrow("'x' is NaN");
    expect(() => checkJson({ ok: [1, "a", null, { d: new Date(0) }] })).not.toThrow();
    expect(() => checkJson(undefined)).not.toThrow();
  });
});
