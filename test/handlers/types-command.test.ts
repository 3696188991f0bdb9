import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, runFlowd } from "../helpers/process";

const dir = mkdtempSync(join(tmpdir(), "flowd-types-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("`flowd types` writes declarations a module typechecks against, with nothing of flowd's installed", async () => {
  const run = await runFlowd(["types", "--out", join(dir, "flowd.d.ts")], {}, { cwd: dir });
  expect(run.code).toBe(0);
  expect(run.stdout).toContain("flowd.d.ts");
  expect(readFileSync(join(dir, "flowd.d.ts"), "utf8")).toContain("export type Handlers");
  writeFileSync(
    join(dir, "good.ts"),
    `import type { Handler, Handlers } from "./flowd";
const add: Handler<{ a: number; b: number }> = { data: { type: "object" }, run: ({ data, log }) => { log("adding"); return data.a + data.b; } };
export default { add, "say.hi": { concurrency: { key: "partner-api", limit: 5 }, rateLimit: { key: "partner-api", max: 10, perMs: 1000 }, expireAfterMs: 60000, run: async ({ job, signal }) => ({ id: job.id, aborted: signal.aborted }) } } satisfies Handlers;
`,
  );
  writeFileSync(join(dir, "bad.ts"), `import type { Handlers } from "./flowd";\nexport default { nope: { data: {} } } satisfies Handlers;\n`);
  const tsc = (file: string) =>
    Bun.spawnSync([join(REPO, "node_modules/.bin/tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", "--lib", "es2022,dom", file], { cwd: dir, stdout: "pipe" });
  const good = tsc("good.ts");
  expect(good.stdout.toString()).toBe("");
  expect(good.exitCode).toBe(0);
  const bad = tsc("bad.ts");
  expect(bad.exitCode).not.toBe(0);
  expect(bad.stdout.toString()).toContain("run");
}, 60_000);
