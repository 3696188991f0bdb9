import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { HttpReply } from "../helpers/http";
import { countKeys } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";

// Every bad request is refused with SPEC's error shape and leaves no trace: no row in Postgres,
// no key in Redis. The API runs in this process; no worker is needed since nothing should run.
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "bad" });
});
afterAll(async () => {
  await stack?.stop();
});

interface Req {
  method?: string;
  path?: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

interface Snapshot {
  flows: number;
  flowJobs: number;
  events: number;
  redisKeys: number;
}

async function snapshot(): Promise<Snapshot> {
  const { sql } = stack.database;
  const [row] = await sql<{ flows: number; flow_jobs: number; events: number }[]>`
    select (select count(*)::int from flows) as flows,
           (select count(*)::int from flow_jobs) as flow_jobs,
           (select count(*)::int from events) as events`;
  return { flows: row?.flows ?? -1, flowJobs: row?.flow_jobs ?? -1, events: row?.events ?? -1, redisKeys: await countKeys(stack.config.prefix) };
}

/** SPEC's error body: `{ error: { code: snake_case, message: a sentence, details? } }`, as JSON. */
function expectErrorShape(res: HttpReply, code?: string) {
  expect(res.headers.get("content-type") ?? "").toContain("application/json");
  expect(typeof res.body).toBe("object");
  expect(res.body).not.toBeNull();
  expect(Object.keys(res.body)).toEqual(["error"]);
  const error = res.body.error;
  for (const key of Object.keys(error)) expect(["code", "message", "details"]).toContain(key);
  expect(error.code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  if (code) expect(error.code).toBe(code);
  expect(typeof error.message).toBe("string");
  // A human sentence: capitalised, several words, ends with a full stop; never a stack trace.
  expect(error.message).toMatch(/^[A-Z].* .*\.$/s);
  expect(error.message).not.toMatch(/\n\s+at /);
}

/**
 * Sends `req` and asserts it is refused with `status` (or one of several) and `code`, with nothing
 * written anywhere. Returns the reply for further checks.
 */
async function refused(req: Req, status: number | number[], code?: string): Promise<HttpReply> {
  const before = await snapshot();
  const res = await stack.http(req.method ?? "POST", req.path ?? "/v1/flows", req.body, { raw: req.raw, headers: req.headers });
  const statuses = Array.isArray(status) ? status : [status];
  if (!statuses.includes(res.status)) throw new Error(`expected ${statuses.join(" or ")}, got ${res.status}: ${JSON.stringify(res.body)}`);
  expectErrorShape(res, code);
  expect(await snapshot()).toEqual(before);
  return res;
}

/** A refused body's `details`: an array naming where the input is wrong. */
function expectDetailsNaming(res: HttpReply, path: string) {
  const details = res.body.error.details;
  expect(Array.isArray(details)).toBe(true);
  expect(details.length).toBeGreaterThan(0);
  const paths = (details as { path: string }[]).map((d) => d.path);
  if (!paths.some((p) => p.startsWith(path))) throw new Error(`no detail names ${path}: ${JSON.stringify(details)}`);
}

/** A chain of `depth` nested echo nodes. */
function chain(depth: number): Record<string, unknown> {
  let node: Record<string, unknown> = { name: "echo", data: { level: depth } };
  for (let level = depth - 1; level >= 1; level--) node = { name: "echo", data: { level }, children: [node] };
  return node;
}

/** A root echo with `n` echo children. */
const wide = (n: number) => ({ name: "echo", children: Array.from({ length: n }, (_, i) => ({ name: "echo", data: { i } })) });

const flow = (root: unknown) => ({ name: "bad", root });
const withOpts = (opts: unknown) => flow({ name: "echo", opts });
const withData = (data: unknown) => flow({ name: "echo", data });

describe("bad input to POST /v1/flows", () => {
  test("the stack starts with nothing in Postgres, and only the queues' declarations in Redis", async () => {
    // Each queue's meta hash (its event stream's cap), written when the API starts: the flow
    // queues and flowd's own jobs, schedules and webhooks queues.
    const queues = stack.config.flowQueues.length + 3;
    expect(await snapshot()).toEqual({ flows: 0, flowJobs: 0, events: 0, redisKeys: queues });
  });

  describe("bodies that are not a flow", () => {
    test("malformed JSON is 400 invalid_json", async () => {
      await refused({ raw: `{"name": "x", "root": {` }, 400, "invalid_json");
    });
    test("an array body is 400", async () => {
      await refused({ raw: "[1,2]" }, 400);
    });
    test("a string body is 400", async () => {
      await refused({ raw: `"x"` }, 400);
    });
  });

  describe("shape errors are 400 invalid_input with details naming the path", () => {
    const cases: [title: string, body: unknown, path: string][] = [
      ["missing name", { root: { name: "echo" } }, "/name"],
      ["missing root", { name: "x" }, "/root"],
      ["an extra top-level field", { name: "x", root: { name: "echo" }, extra: 1 }, "/extra"],
      ["an extra field in a node", { name: "x", root: { name: "echo", children: [{ name: "echo", color: "red" }] } }, "/root"],
      ["name a number", { name: 5, root: { name: "echo" } }, "/name"],
      ["children not an array", { name: "x", root: { name: "echo", children: { name: "echo" } } }, "/root"],
    ];
    for (const [title, body, path] of cases)
      test(title, async () => {
        const res = await refused({ body }, 400, "invalid_input");
        expectDetailsNaming(res, path);
      });
  });

  describe("handlers and queues", () => {
    test("an unknown handler at the root is 400 unknown_handler", async () => {
      const res = await refused({ body: flow({ name: "nope" }) }, 400, "unknown_handler");
      expect(res.body.error.message).toContain("nope");
    });
    test("an unknown handler deep in the tree is 400 unknown_handler naming its path", async () => {
      const root = { name: "echo", children: [{ name: "echo", children: [{ name: "nope" }] }, { name: "echo" }] };
      const res = await refused({ body: flow(root) }, 400, "unknown_handler");
      expect(res.body.error.message).toContain("/root/children/0/children/0");
    });
    test("an unknown queue is 400 unknown_queue", async () => {
      const res = await refused({ body: flow({ name: "echo", queue: "other" }) }, 400, "unknown_queue");
      expect(res.body.error.message).toContain("other");
    });
  });

  describe("limits", () => {
    test("depth 33 is 400 flow_too_deep", async () => {
      await refused({ body: flow(chain(33)) }, 400, "flow_too_deep");
    });
    test("1,001 jobs is 400 too_many_jobs", async () => {
      await refused({ body: flow(wide(1000)) }, 400, "too_many_jobs");
    });
    test("a 2 MiB body is 413 payload_too_large with the error shape", async () => {
      const res = await refused({ body: flow({ name: "echo", data: { blob: "x".repeat(2 * 1024 * 1024) } }) }, 413, "payload_too_large");
      expect(res.body.error.message).toContain("FLOWD_BODY_LIMIT");
    });
    test("a 2 MiB body streamed without content-length is 413 payload_too_large too", async () => {
      const payload = new TextEncoder().encode(JSON.stringify(flow({ name: "echo", data: { blob: "x".repeat(2 * 1024 * 1024) } })));
      const before = await snapshot();
      const body = new ReadableStream({
        start(controller) {
          for (let i = 0; i < payload.length; i += 64 * 1024) controller.enqueue(payload.slice(i, i + 64 * 1024));
          controller.close();
        },
      });
      const res = await fetch(stack.baseUrl + "/v1/flows", {
        method: "POST",
        headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" },
        body,
      });
      const reply = (await res.json()) as any;
      expect({ status: res.status, code: reply.error?.code }).toEqual({ status: 413, code: "payload_too_large" });
      expect(await snapshot()).toEqual(before);
    });
    test("a NUL character in a string is 400, not a database error", async () => {
      await refused({ raw: `{"name":"x","root":{"name":"echo","data":{"s":"a\\u0000b"}}}` }, 400, "invalid_input");
      await refused({ raw: `{"name":"a\\u0000b","root":{"name":"echo"}}` }, 400, "invalid_input");
    });
    test("an id holding control characters is 404, not a database error", async () => {
      for (const [method, suffix] of [["GET", ""], ["POST", "/cancel"], ["POST", "/retry"], ["DELETE", ""]] as const)
        await refused({ method, path: `/v1/flows/%00%01${suffix}` }, 404, "not_found");
    });
    test("a body just over 1 MiB is 413 payload_too_large", async () => {
      const res = await refused({ body: flow({ name: "echo", data: { blob: "x".repeat(1024 * 1024 + 10_000) } }) }, 413, "payload_too_large");
      expect(res.body.error.message).toContain(String(stack.config.bodyLimit));
    });
  });

  describe("opts", () => {
    const cases: [title: string, opts: unknown][] = [
      ["attempts 0", { attempts: 0 }],
      ["attempts 10000", { attempts: 10_000 }],
      ["attempts as a string", { attempts: "3" }],
      ["attempts 2.5", { attempts: 2.5 }],
      ["delay -1", { delay: -1 }],
      ["priority -1", { priority: -1 }],
      ["a linear backoff", { backoff: { type: "linear", delay: 10 } }],
      ["an unknown key", { removeOnComplete: true }],
      ["two failure policies at once", { ignoreDependencyOnFailure: true, continueParentOnFailure: true }],
    ];
    for (const [title, opts] of cases)
      test(`${title} is 400`, async () => {
        const res = await refused({ body: withOpts(opts) }, 400, "invalid_input");
        expect(JSON.stringify(res.body.error)).toContain("/root/opts");
      });
  });

  describe("data", () => {
    const notObjects: [title: string, data: unknown][] = [
      ["a number", 5],
      ["a string", "x"],
      ["an array", [1]],
      ["null", null],
    ];
    for (const [title, data] of notObjects)
      test(`data as ${title} is 400`, async () => {
        const res = await refused({ body: withData(data) }, 400, "invalid_input");
        expectDetailsNaming(res, "/root/data");
      });

    const invalidForHandler: [title: string, root: unknown][] = [
      ["sleep without ms", { name: "sleep", data: {} }],
      ["sleep with ms -5", { name: "sleep", data: { ms: -5 } }],
      ["http with an ftp url", { name: "http", data: { url: "ftp://x" } }],
    ];
    for (const [title, root] of invalidForHandler)
      test(`${title} is 400 invalid_job_data`, async () => {
        const res = await refused({ body: flow(root) }, 400, "invalid_job_data");
        expect(res.body.error.message).toContain("/root/data");
      });
  });

  test("JSON media types are matched as HTTP says: any case, and +json suffixes", async () => {
    for (const type of ["Application/JSON", "application/json; charset=utf-8", "application/vnd.api+json"]) {
      const res = await stack.http("POST", "/v1/flows", undefined, { raw: JSON.stringify(flow({ name: "echo" })), headers: { "content-type": type } });
      expect(res.status).toBe(201);
    }
  });

  test("a route without a body ignores one sent as text/plain (fetch's default for a string)", async () => {
    const created = await stack.http("POST", "/v1/flows", flow({ name: "sleep", data: { ms: 60_000 } }));
    const res = await stack.http("POST", `/v1/flows/${created.body.id}/cancel`, undefined, { raw: "{}", headers: { "content-type": "text/plain;charset=UTF-8" } });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("cancelled");
  });

  test("without a token, a body in another media type is still 401 first", async () => {
    const res = await fetch(`${stack.baseUrl}/v1/flows`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(res.status).toBe(401);
  });

  for (const type of ["text/plain", "application/x-www-form-urlencoded"])
    test(`a JSON body labelled ${type} is 400 unsupported_content_type, saying what to send`, async () => {
      const res = await refused({ raw: JSON.stringify(flow({ name: "echo" })), headers: { "content-type": type } }, 400, "unsupported_content_type");
      expect(res.body.error.message).toContain("application/json");
    });
});

describe("bad ids and queries", () => {
  const longId = "a".repeat(65);

  test("GET an unknown flow is 404 not_found", async () => {
    await refused({ method: "GET", path: "/v1/flows/does-not-exist" }, 404, "not_found");
  });
  test("GET a 65-character id is 404 or 400", async () => {
    await refused({ method: "GET", path: `/v1/flows/${longId}` }, [400, 404]);
  });

  for (const [method, suffix] of [
    ["POST", "/cancel"],
    ["POST", "/retry"],
    ["DELETE", ""],
  ] as const) {
    test(`${method} ${suffix || "/"} on an unknown flow is 404 not_found`, async () => {
      await refused({ method, path: `/v1/flows/does-not-exist${suffix}` }, 404, "not_found");
    });
    test(`${method} ${suffix || "/"} on a 65-character id is 404 or 400`, async () => {
      await refused({ method, path: `/v1/flows/${longId}${suffix}` }, [400, 404]);
    });
  }

  const saying: Record<string, string> = {
    "limit=0": "must be an integer from 1 to 100",
    "limit=101": "must be an integer from 1 to 100",
    "limit=abc": "must be an integer from 1 to 100",
    "status=bogus": "must be one of running, completed, failed, cancelled",
  };
  for (const [query, says] of Object.entries(saying))
    test(`GET /v1/flows?${query} is 400, saying what the value must be`, async () => {
      const res = await refused({ method: "GET", path: `/v1/flows?${query}` }, 400, "invalid_input");
      expect(res.body.error.message).toContain(says);
    });

  for (const wait of ["61", "-1"])
    test(`GET /v1/flows/:id?wait=${wait} is 400`, async () => {
      await refused({ method: "GET", path: `/v1/flows/does-not-exist?wait=${wait}` }, 400, "invalid_input");
    });

  test("an unknown /v1 route is 401 or 404 with the error shape", async () => {
    await refused({ method: "GET", path: "/v1/nope" }, [401, 404]);
  });
});

// These are accepted, so they write: they run after every refusal above.
describe("exactly at the limits", () => {
  test("depth 32 is accepted", async () => {
    const res = await stack.http("POST", "/v1/flows", flow(chain(32)));
    expect(res.status).toBe(201);
    expect(res.body.jobCount).toBe(32);
  });
  test("1,000 jobs is accepted", async () => {
    const res = await stack.http("POST", "/v1/flows", flow(wide(999)));
    expect(res.status).toBe(201);
    expect(res.body.jobCount).toBe(1000);
    const [row] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where flow_id = ${res.body.id}`;
    expect(row?.n).toBe(1000);
  });
});

describe("after all of that", () => {
  test("the server is healthy: a valid flow is still 201", async () => {
    const res = await stack.http("POST", "/v1/flows", { name: "fine", root: { name: "echo", data: { ok: true }, children: [{ name: "sleep", data: { ms: 1 } }] } });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe("running");
    expect(res.body.jobCount).toBe(2);
    const read = await stack.http("GET", `/v1/flows/${res.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(res.body.id);
  });
});
