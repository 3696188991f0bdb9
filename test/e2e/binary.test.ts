import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropDatabase } from "../helpers/db";
import { runFlowd, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { PG_BASE, REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { prepareBinary } from "../helpers/binary";
import { testPort } from "../helpers/ports";

/**
 * The compiled binary, copied alone into an empty folder, against a database that does not exist
 * yet: migrate, token create, then an api and a worker process running a flow together.
 * FLOWD_BIN points at a binary built beforehand (CI); otherwise this file builds one.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-e2e-"));
const bin = join(dir, "flowd");
const dbName = `flowd_e2e_${process.pid}_${Date.now().toString(36)}`;
const prefix = uniquePrefix("e2e");
const port = testPort();
const env = {
  DATABASE_URL: `${PG_BASE}/${dbName}`,
  REDIS_URL,
  FLOWD_PREFIX: prefix,
  PORT: String(port),
  LOG_LEVEL: "info",
};
const procs: FlowdProcess[] = [];

beforeAll(async () => {
  prepareBinary(bin);
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop("SIGKILL")));
  await deletePrefix(prefix);
  await dropDatabase(dbName);
  rmSync(dir, { recursive: true, force: true });
});

describe("the compiled binary", () => {
  test("runs alone from an empty folder: migrate, token, api + worker, readiness, auth, SIGTERM", async () => {
    expect(readdirSync(dir)).toEqual(["flowd"]);
    const migrated = await runFlowd(["migrate"], env, { bin, cwd: dir });
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toContain("migrations up to date");

    const created = await runFlowd(["token", "create", "--user", "e2e"], env, { bin, cwd: dir });
    expect(created.code).toBe(0);
    const token = created.stdout.trim().split("\n").pop()!;
    expect(token).toMatch(/^flowd_[A-Za-z0-9_-]{40,}$/);

    const api = spawnFlowd(["--role=api"], env, { bin, cwd: dir });
    procs.push(api);
    const worker = spawnFlowd(["--role=worker"], env, { bin, cwd: dir });
    procs.push(worker);
    await api.waitForLine(/"flowd ready"/);
    await worker.waitForLine(/"flowd ready"/);
    // The worker role opens no HTTP listener.
    expect(worker.lines.some((l) => l.includes('"listening"'))).toBe(false);

    const base = `http://127.0.0.1:${port}`;
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", postgres: "ok", redis: "ok" });
    const anonymous = await fetch(`${base}/v1/flows`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as any).error.code).toBe("unauthorized");
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    expect((await fetch(`${base}/v1/flows`, { headers: auth })).status).toBe(200);
    const docs = await fetch(`${base}/docs/json`);
    expect(docs.status).toBe(200);
    const document = (await docs.json()) as any;
    const paths = Object.keys(document.paths);
    for (const path of ["/v1/flows", "/v1/flows/{id}", "/v1/jobs", "/v1/schedules", "/v1/events", "/v1/ws", "/readyz", "/metrics"])
      expect(paths).toContain(path);
    // Only OpenAPI's operations: the socket is documented as the GET that upgrades.
    const operations = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace", "parameters", "summary", "description", "servers"]);
    for (const path of paths) for (const key of Object.keys(document.paths[path])) expect(operations.has(key)).toBe(true);
    expect(Object.keys(document.paths["/v1/ws"])).toEqual(["get"]);

    const flow: any = await (
      await fetch(`${base}/v1/flows`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ name: "e2e", root: { name: "echo", data: { hi: 1 }, children: [{ name: "echo" }] } }),
      })
    ).json();
    const done = await waitFor(async () => {
      const res: any = await (await fetch(`${base}/v1/flows/${flow.id}?wait=5`, { headers: auth })).json();
      return res.status === "completed" && res;
    }, 20_000, "flow completed");
    expect(done.root.result.data).toEqual({ hi: 1 });

    expect(await worker.stop("SIGTERM")).toBe(0);
    expect(await api.stop("SIGTERM")).toBe(0);
    expect(api.lines.some((l) => l.includes('"stopped"'))).toBe(true);
    expect(existsSync(join(dir, "drizzle"))).toBe(false);
  }, 90_000);
});
