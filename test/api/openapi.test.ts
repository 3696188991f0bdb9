import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERROR_CODES } from "../../src/api/models/errors";
import { Conflict, InvalidInput, NotFound, RateLimited, TooLarge, Unauthorized } from "../../src/errors";
import { FLOW_STATUSES, JOB_STATUSES } from "../../src/statuses";
import { REPO } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";

/**
 * The served document as the tools users bring read it: openapi-typescript generates a client type
 * that tsc holds calls to, Redocly lints it clean, and the /docs page loads nothing from elsewhere.
 */

type Json = Record<string, any>;
let stack: Stack;
let doc: Json;
const dir = mkdtempSync(join(tmpdir(), "flowd-openapi-"));
const docFile = join(dir, "openapi.json");
const bin = (name: string) => join(REPO, "node_modules/.bin", name);
const PROBES = ["/healthz", "/readyz", "/metrics"];
/** Routes that need no token: the probes, and http tasks' callbacks (their path is the credential). */
const isPublic = (path: string) => PROBES.includes(path) || path.startsWith("/callbacks/");

const run = (cmd: string[]) => {
  const p = Bun.spawnSync(cmd, { cwd: REPO, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode, out: p.stdout.toString() + p.stderr.toString() };
};

const operations = () =>
  Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op: op as Json })),
  );

beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "oapi" });
  const res = await fetch(`${stack.baseUrl}/docs/json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Json;
  writeFileSync(docFile, JSON.stringify(doc));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the OpenAPI document", () => {
  test("openapi-typescript generates types; tsc accepts a correct typed create and refuses a wrong body", () => {
    const gen = run([bin("openapi-typescript"), docFile, "-o", join(dir, "api.d.ts")]);
    expect(gen.out).not.toContain("Can't resolve");
    expect(gen.code).toBe(0);
    const prelude = `import type { paths, components } from "./api";
type CreateFlow = paths["/v1/flows"]["post"]["requestBody"]["content"]["application/json"];
type Created = paths["/v1/flows"]["post"]["responses"][201]["content"]["application/json"];
type ErrorCode = components["schemas"]["Error"]["error"]["code"];
`;
    writeFileSync(
      join(dir, "good.ts"),
      `${prelude}
export const body: CreateFlow = { name: "f", root: { name: "echo", data: { a: 1 }, opts: { attempts: 3, backoff: { type: "fixed", delay: 10 } }, children: [{ name: "sleep", data: { ms: 5 } }] } };
export const status: Created["status"] = "running";
export const graph: CreateFlow = { name: "g", jobs: [{ key: "a", name: "echo" }, { key: "b", name: "echo", dependsOn: ["a"] }] };
// A tree flow has root, a graph flow jobs: each is optional in the one Flow view.
export const jobStatus: NonNullable<Created["root"]>["children"][number]["status"] = "waiting-children";
export const jobKey: NonNullable<Created["jobs"]>[number]["key"] = "a";
export const code: ErrorCode = "flow_finished";
export const job: paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"] = { name: "echo" };
`,
    );
    writeFileSync(join(dir, "bad.ts"), `${prelude}\nexport const body: CreateFlow = { name: "f", root: { nam: "echo" } };\n`);
    writeFileSync(join(dir, "bad-status.ts"), `${prelude}\nexport const status: Created["status"] = "finished";\n`);
    // One tsc run over the three files (each a separate program would cost three compiler starts);
    // its errors are told apart by the file they name.
    const tsc = run([bin("tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", ...["good.ts", "bad.ts", "bad-status.ts"].map((f) => join(dir, f))]);
    const errorsIn = (file: string) => tsc.out.split("\n").filter((line) => line.includes(`${file}(`)).join("\n");
    expect(tsc.code).not.toBe(0);
    expect(errorsIn("good.ts")).toBe("");
    expect(errorsIn("bad.ts")).toContain("nam");
    expect(errorsIn("bad-status.ts")).toContain('"finished"');
    // Only those two files' errors: nothing else in the generated types is refused.
    expect(tsc.out.split("\n").filter((line) => /error TS/.test(line) && !/bad(-status)?\.ts\(/.test(line))).toEqual([]);
  }, 120_000);

  test("Redocly lint exits 0", () => {
    const lint = run([bin("redocly"), "lint", docFile, "--config", join(REPO, "redocly.yaml")]);
    expect(lint.out).toContain("valid");
    expect(lint.code).toBe(0);
  }, 60_000);

  test("what redocly.yaml turns off holds where it applies: a 2XX, 400 and 401 on every token route", () => {
    for (const { path, method, op } of operations()) {
      const statuses = Object.keys(op.responses);
      if (path === "/v1/ws") expect(statuses).toContain("101");
      else expect(statuses.some((s) => s.startsWith("2"))).toBe(true);
      if (isPublic(path) || path === "/v1/ws") continue;
      expect([method, path, statuses]).toEqual([method, path, expect.arrayContaining(["400", "401", "429", "503"])]);
    }
  });

  test("every component is referenced, and every reference points into components", () => {
    const text = JSON.stringify(doc);
    for (const name of Object.keys(doc.components.schemas)) expect([name, text.includes(`"#/components/schemas/${name}"`)]).toEqual([name, true]);
    for (const [, ref] of text.matchAll(/"\$ref":"([^"]*)"/g)) {
      expect(ref!.startsWith("#/components/schemas/")).toBe(true);
      expect(doc.components.schemas[ref!.slice("#/components/schemas/".length)]).toBeDefined();
    }
    expect(text).not.toContain('"$id"');
  });

  test("an operationId per route, bearer security except the probes, servers", () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const { path, op } of operations()) expect([path, op.security]).toEqual([path, isPublic(path) ? [] : undefined]);
    expect(doc.servers.length).toBeGreaterThan(0);
  });

  test("request bodies carry their schemas; the recursive nodes are components", () => {
    const create = doc.paths["/v1/flows"].post.requestBody.content["application/json"].schema;
    expect(create).toEqual({ $ref: "#/components/schemas/CreateFlow" });
    expect(doc.components.schemas.FlowNode.properties.children.items).toEqual({ $ref: "#/components/schemas/FlowNode" });
    expect(doc.components.schemas.JobNode.properties.children.items).toEqual({ $ref: "#/components/schemas/JobNode" });
    for (const { method, op, path } of operations())
      if (method === "post" && op.requestBody) expect([path, Object.keys(op.requestBody.content)]).toEqual([path, ["application/json"]]);
    for (const path of ["/v1/jobs", "/v1/jobs/bulk", "/v1/schedules", "/v1/webhooks"])
      expect(doc.paths[path].post.requestBody.content["application/json"].schema.$ref).toStartWith("#/components/schemas/");
  });

  test("statuses and error codes are enums from their one source; DELETEs answer 204; limit has no default", () => {
    const s = doc.components.schemas;
    expect(s.JobNode.properties.status.enum).toEqual([...JOB_STATUSES]);
    expect(s.Job.properties.status.enum).toEqual([...JOB_STATUSES]);
    expect(s.FlowSummary.properties.status.enum).toEqual([...FLOW_STATUSES]);
    expect(s.Flow.properties.status.enum).toEqual([...FLOW_STATUSES]);
    const codes: string[] = s.Error.properties.error.properties.code.enum;
    expect(codes).toEqual([...ERROR_CODES]);
    const domain = [new InvalidInput("x"), new Unauthorized(), new NotFound("flow", "x"), new TooLarge("x"), new RateLimited(1, 1), new Conflict("flow_finished", "x")];
    for (const e of domain) expect(codes).toContain(e.code);
    for (const { method, op, path } of operations()) {
      if (method === "delete") expect([path, Object.keys(op.responses)]).toEqual([path, expect.arrayContaining(["204", "404"])]);
      for (const p of op.parameters ?? []) {
        if (p.name !== "limit") continue;
        expect(p.schema.type).toBe("integer");
        expect(p.schema.default).toBeUndefined();
        expect(p.schema.minimum).toBe(1);
      }
    }
    expect(Object.keys(doc.paths["/v1/events"].get.responses)).toContain("410");
  });

  test("the socket's messages are components referenced from /v1/ws", () => {
    const ws = doc.paths["/v1/ws"].get;
    expect(ws.responses["101"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/SocketServerMessage" });
    expect(ws["x-client-messages"]).toEqual({ $ref: "#/components/schemas/SocketClientMessage" });
    const s = doc.components.schemas;
    const ops = s.SocketClientMessage.oneOf.map((r: Json) => s[r.$ref.split("/").pop()].properties.op.const);
    expect(ops.sort()).toEqual(["ping", "subscribe", "unsubscribe"]);
    const types = s.SocketServerMessage.oneOf.map((r: Json) => s[r.$ref.split("/").pop()].properties.type.const);
    expect(types.sort()).toEqual(["error", "event", "pong", "subscribed", "unsubscribed"]);
  });
});

describe("/docs", () => {
  test("references no outside URL, and its script comes from this server", async () => {
    const res = await fetch(`${stack.baseUrl}/docs`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toEqual(["/docs/assets/api-reference.js"]);
    const script = await fetch(`${stack.baseUrl}${scripts[0]}`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("javascript");
    expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).not.toContain("cdn.jsdelivr.net");
    expect(csp).not.toMatch(/https?:\/\//);
  });
});
