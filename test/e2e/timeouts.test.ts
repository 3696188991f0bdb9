import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * `opts.timeoutMs` with a real API, worker process, Postgres and Redis: an attempt past its time is
 * ended (the handler's signal aborts, an http call is cut) and fails, retried per `opts`; an attempt
 * that ignores its signal never turns the job `completed` afterwards.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-timeouts-"));
const marker = join(dir, "late-return");

const MODULE = `
import { writeFileSync } from "node:fs";
const nap = (ms: number, signal?: AbortSignal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
export default {
  // Hangs (heeding its signal) on the first attempt only: a timeout then a retry that succeeds.
  napper: {
    async run(ctx: { attemptsMade: number; signal: AbortSignal }) {
      if (ctx.attemptsMade === 0) await nap(60_000, ctx.signal);
      return { attempt: ctx.attemptsMade };
    },
  },
  // Ignores its signal and answers late, leaving a mark when it does.
  stubborn: {
    async run(ctx: { data: { marker: string } }) {
      await nap(1_500);
      writeFileSync(ctx.data.marker, "returned");
      return { late: true };
    },
  },
};
`;

let stack: Stack;
let hanging: ReturnType<typeof Bun.serve>;
/** Requests the slow service saw end because the caller went away. */
let cut = 0;

beforeAll(async () => {
  const modules = join(dir, "handlers.ts");
  writeFileSync(modules, MODULE);
  hanging = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const aborted = new Promise<void>((resolve) => req.signal.addEventListener("abort", () => resolve(), { once: true }));
      const answered = await Promise.race([aborted.then(() => false), Bun.sleep(20_000).then(() => true)]);
      if (!answered) cut++;
      return Response.json({ ok: true });
    },
  });
  stack = await startStack({ tag: "timeouts", env: { FLOWD_HANDLERS: modules } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  hanging?.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const job = async (id: string) => (await stack.http("GET", `/v1/jobs/${id}`)).body;
const finished = (id: string, ms = 20_000) =>
  waitFor(async () => {
    const j = await job(id);
    return ["completed", "failed", "cancelled"].includes(j.status) && j;
  }, ms, `job ${id} finished`);
async function create(body: Record<string, unknown>) {
  const res = await stack.http("POST", "/v1/jobs", body);
  expect(res.status).toBe(201);
  return res.body as { id: string };
}

describe("opts.timeoutMs", () => {
  test("a built-in sleep past its timeoutMs is aborted, each attempt failing with 'timed out after N ms'", async () => {
    const started = Date.now();
    const { id } = await create({ name: "sleep", data: { ms: 30_000 }, opts: { timeoutMs: 300, attempts: 2 } });
    const done = await finished(id);
    expect(done.status).toBe("failed");
    expect(done.attemptsMade).toBe(2);
    expect(done.error.message).toContain("timed out after 300 ms");
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  test("a handler that sleeps past timeoutMs is aborted and its retry succeeds", async () => {
    const { id } = await create({ name: "napper", opts: { timeoutMs: 300, attempts: 2 } });
    const done = await finished(id);
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({ attempt: 1 });
    expect(done.attemptsMade).toBe(2);
  }, 30_000);

  test("an attempt that ignores its signal fails at timeoutMs and never completes the job afterwards", async () => {
    const { id } = await create({ name: "stubborn", data: { marker }, opts: { timeoutMs: 200, attempts: 1 } });
    const done = await finished(id);
    expect(done.status).toBe("failed");
    expect(done.error.message).toContain("timed out after 200 ms");
    // The handler returns later; a job created after that return finishing means the recorder has
    // read past anything the late return could have caused.
    await waitFor(() => existsSync(marker), 10_000, "the stubborn handler's late return");
    const after = await create({ name: "echo", data: { barrier: true } });
    expect((await finished(after.id)).status).toBe("completed");
    const later = await job(id);
    expect(later.status).toBe("failed");
    expect(later.result).toBeNull();
    expect(later.attemptsMade).toBe(1);
  }, 30_000);

  test("an http task's request is cut at timeoutMs", async () => {
    const started = Date.now();
    const url = `http://127.0.0.1:${hanging.port}/slow`;
    const { id } = await create({ name: "http", data: { url }, opts: { timeoutMs: 400, attempts: 1 } });
    const done = await finished(id);
    expect(done.status).toBe("failed");
    expect(done.error.message).toContain("timed out after 400 ms");
    expect(Date.now() - started).toBeLessThan(10_000);
    await waitFor(() => cut >= 1, 5_000, "the service to see its request cut");
  }, 30_000);
});
