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
    expect(a).toMatchObject({ queues: ["jobs"], description: "adds", timeoutMs: 500 });
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
  ];
  for (const [what, paths, message] of cases)
    test(`refuses ${what}, naming the file and handler in one line`, async () => {
      const p = paths();
      const err = await refusal(p);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(p[0]!);
      expect(err.message).not.toContain("\n");
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
    ({ name: "h", file: "f", run, queues: QUEUES, dataSchema: null, validate: null, description: null, timeoutMs }) as const;
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
