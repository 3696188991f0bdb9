import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { countKeys } from "../helpers/redis";
import { spawnFlowd, type FlowdProcess } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";

// Input that is valid JSON or valid HTTP but that Postgres cannot keep (NUL, unpaired surrogates,
// numbers past ±1.8e308 or past bigint), and requests too big to read: each is refused in SPEC's
// error shape where it arrives, and leaves no trace. A spawned API process (started with Bun's
// header cap raised) shows the JSON 431 and that its log never prints what a user sent.
let stack: Stack;
let api: FlowdProcess;
let apiUrl = "";
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "odd" });
  api = spawnFlowd(["--role=api"], { ...stack.env, LOG_LEVEL: "debug", BUN_OPTIONS: "--max-http-header-size=65536" });
  const line = await api.waitForLine(/"msg":"listening"/, 60_000);
  apiUrl = JSON.parse(line).url;
});
afterAll(async () => {
  await api?.stop("SIGTERM");
  await stack?.stop();
});

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

async function send(method: string, path: string, o: { raw?: string; headers?: Record<string, string>; base?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = { authorization: `Bearer ${stack.token}`, ...o.headers };
  if (o.raw !== undefined) headers["content-type"] ??= "application/json";
  const res = await fetch((o.base ?? stack.baseUrl) + path, { method, headers, body: o.raw });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** One request written byte for byte to the API's socket (for what fetch will not send). */
function rawRequest(port: number, head: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    const done = () => {
      const text = data.toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      if (split < 0) return false;
      const [statusLine, ...lines] = text.slice(0, split).split("\r\n");
      const headers = new Headers();
      for (const line of lines) headers.append(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim());
      const length = Number(headers.get("content-length") ?? 0);
      const bodyBytes = data.subarray(Buffer.byteLength(text.slice(0, split + 4), "latin1"));
      if (bodyBytes.length < length) return false;
      const body = bodyBytes.subarray(0, length).toString("utf8");
      let parsed: unknown = body;
      try {
        parsed = body ? JSON.parse(body) : null;
      } catch {
        // not JSON
      }
      socket.destroy();
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, text: body, body: parsed });
      return true;
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer; got ${JSON.stringify(data.toString("latin1").slice(0, 200))}`));
    }, 10_000);
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (done()) clearTimeout(timer);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (!done()) reject(new Error(`closed without a complete answer: ${JSON.stringify(data.toString("latin1").slice(0, 200))}`));
    });
    socket.on("error", () => {});
    socket.write(head);
  });
}

const portOf = (url: string) => Number(new URL(url).port);

async function snapshot() {
  const [row] = await stack.database.sql<Record<string, number>[]>`
    select (select count(*)::int from flows) as flows,
           (select count(*)::int from flow_jobs) as flow_jobs,
           (select count(*)::int from jobs) as jobs,
           (select count(*)::int from schedules) as schedules,
           (select count(*)::int from events) as events,
           (select count(*)::int from idempotent_replies) as replies`;
  return { ...row, redisKeys: await countKeys(stack.config.prefix) };
}

/** SPEC's error body: `{ error: { code: snake_case, message: a sentence, details? } }`, as JSON. */
function expectErrorShape(res: Reply, code?: string) {
  expect(res.headers.get("content-type") ?? "").toContain("application/json");
  expect(typeof res.body).toBe("object");
  expect(res.body).not.toBeNull();
  expect(Object.keys(res.body)).toEqual(["error"]);
  for (const key of Object.keys(res.body.error)) expect(["code", "message", "details"]).toContain(key);
  expect(res.body.error.code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  if (code) expect(res.body.error.code).toBe(code);
  expect(res.body.error.message).toMatch(/^[A-Z].* .*\.$/s);
  expect(res.body.error.message).not.toMatch(/\n\s+at /);
}

/** Asserts `make()` is refused with `status` and `code` in SPEC's shape, and wrote nothing. */
async function refused(make: () => Promise<Reply>, status: number, code: string): Promise<Reply> {
  const before = await snapshot();
  const res = await make();
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${res.text.slice(0, 300)}`);
  expectErrorShape(res, code);
  expect(await snapshot()).toEqual(before);
  return res;
}

const job = (dataJson: string) => `{"name":"echo","data":${dataJson}}`;
const flow = (dataJson: string) => `{"name":"odd","root":{"name":"echo","data":${dataJson}}}`;
const schedule = (dataJson: string) => `{"name":"odd","every":60000,"job":{"name":"echo","data":${dataJson}}}`;
const creates: [path: string, wrap: (data: string) => string, prefix: string][] = [
  ["/v1/jobs", job, "/data"],
  ["/v1/flows", flow, "/root/data"],
  ["/v1/schedules", schedule, "/job/data"],
];

describe("strings and numbers Postgres cannot keep, in a body", () => {
  test("the database starts empty", async () => {
    const { redisKeys: _, ...rows } = await snapshot();
    expect(rows).toEqual({ flows: 0, flow_jobs: 0, jobs: 0, schedules: 0, events: 0, replies: 0 });
  });

  // Written as JSON text: the escapes below are what the client sends, byte for byte.
  const bodies: [title: string, data: string, where: string, says: string][] = [
    ["a lone high surrogate", String.raw`{"a":"\ud800"}`, "/a", "unpaired UTF-16 surrogate"],
    ["a lone low surrogate", String.raw`{"a":"x\uDC00y"}`, "/a", "unpaired UTF-16 surrogate"],
    ["a high surrogate at the end, after a pair", String.raw`{"a":"\ud83d\ude00\ud83d"}`, "/a", "unpaired UTF-16 surrogate"],
    ["a reversed pair", String.raw`{"a":"\ude00\ud83d"}`, "/a", "unpaired UTF-16 surrogate"],
    ["a lone surrogate in a key", String.raw`{"k\ud800":1}`, "/k", "unpaired UTF-16 surrogate"],
    ["a lone surrogate deep in an array", String.raw`{"a":[1,{"b":["ok","\udbff"]}]}`, "/a/1/b/1", "unpaired UTF-16 surrogate"],
    ["NUL in a key", String.raw`{"a\u0000":1}`, "/a", "NUL"],
    ["1e400", `{"a":1e400}`, "/a", "too large"],
    ["-1e400", `{"a":[0,-1e400]}`, "/a/1", "too large"],
    ["a 400-digit integer", `{"a":1${"0".repeat(400)}}`, "/a", "too large"],
  ];
  for (const [path, wrap, prefix] of creates)
    for (const [title, data, where, says] of bodies)
      test(`${title} on POST ${path} is 400 invalid_input naming ${prefix}${where}`, async () => {
        const res = await refused(() => send("POST", path, { raw: wrap(data) }), 400, "invalid_input");
        expect(res.body.error.message).toContain(says);
        expect(res.body.error.details?.[0]?.path).toStartWith(prefix + where);
      });

  test("a lone surrogate in a top-level field is refused before the schema is checked", async () => {
    const res = await refused(() => send("POST", "/v1/flows", { raw: String.raw`{"name":"\ud800","root":{"name":"echo"}}` }), 400, "invalid_input");
    expect(res.body.error.details[0].path).toBe("/name");
  });

  test("a surrogate 100,000 arrays deep is found without a stack overflow, its path shortened", async () => {
    const deep = `{"a":${"[".repeat(100_000)}"\\ud800"${"]".repeat(100_000)}}`;
    const res = await refused(() => send("POST", "/v1/jobs", { raw: job(deep) }), 400, "invalid_input");
    expect(res.body.error.message).toContain("unpaired UTF-16 surrogate");
    expect(res.body.error.details[0].path).toStartWith("/data/a/0/0/0");
    expect(res.body.error.details[0].path.length).toBeLessThan(400);
  });

  test("a literal backslash-u text is data, not an escape: it is stored as typed", async () => {
    const res = await send("POST", "/v1/jobs", { raw: job(String.raw`{"a":"\\ud800 and \\u0000"}`) });
    expect(res.status).toBe(201);
    expect(res.body.data).toEqual({ a: String.raw`\ud800 and \u0000` });
  });

  test("well-formed pairs and the largest finite numbers are accepted unchanged", async () => {
    const res = await send("POST", "/v1/jobs", { raw: job(String.raw`{"emoji":"\ud83d\ude00","max":1.7976931348623157e308,"tiny":1e-400}`) });
    expect(res.status).toBe(201);
    expect(res.body.data).toEqual({ emoji: "😀", max: 1.7976931348623157e308, tiny: 0 });
  });
});

describe("query strings", () => {
  for (const path of ["/v1/jobs?name=a%00", "/v1/jobs?scheduleId=%00", "/v1/events?flowId=%00", "/v1/flows?cursor=x%00", "/v1/jobs?%00=1"])
    test(`GET ${path} is 400 invalid_input, not a database error`, async () => {
      const res = await refused(() => send("GET", path), 400, "invalid_input");
      expect(res.body.error.message).toContain("NUL");
    });

  test("an invalid UTF-8 sequence (a surrogate's bytes) stays as its %XX text: 200, not 500", async () => {
    const res = await send("GET", "/v1/jobs?name=%ED%A0%80");
    expect(res.status).toBe(200);
  });

  const ranges: [query: string, field: string, says: string][] = [
    ["/v1/events?after=99999999999999999999", "/after", "must be an integer from 0 to 9007199254740991"],
    ["/v1/events?after=9007199254740992", "/after", "must be an integer from 0 to 9007199254740991"],
    ["/v1/events?after=-1", "/after", "must be an integer from 0 to 9007199254740991"],
    ["/v1/events?limit=-1", "/limit", "must be an integer from 1 to 1000"],
    ["/v1/events?limit=1001", "/limit", "must be an integer from 1 to 1000"],
    ["/v1/events?limit=2.5", "/limit", "must be an integer from 1 to 1000"],
    ["/v1/jobs?limit=0", "/limit", "must be an integer from 1 to 100"],
    ["/v1/schedules?limit=101", "/limit", "must be an integer from 1 to 100"],
    ["/v1/webhooks?limit=1e3", "/limit", "must be an integer from 1 to 100"],
    ["/v1/webhooks/x/deliveries?before=99999999999999999999", "/before", "must be an integer from 1 to 9007199254740991"],
    ["/v1/webhooks/x/deliveries?limit=201", "/limit", "must be an integer from 1 to 200"],
    ["/v1/flows/x?wait=61", "/wait", "must be a number from 0 to 60"],
    ["/v1/jobs/x?wait=1e400", "/wait", "must be a number from 0 to 60"],
    ["/v1/jobs/x?wait=0x10", "/wait", "must be a number from 0 to 60"],
  ];
  for (const [query, field, says] of ranges)
    test(`GET ${query} is 400 naming ${field}`, async () => {
      const res = await refused(() => send("GET", query), 400, "invalid_input");
      expect(res.body.error.message).toBe(`Invalid input at ${field}: ${says}.`);
    });

  test("in-range numbers still work, fractional waits included", async () => {
    expect((await send("GET", "/v1/events?after=9007199254740991&limit=1000")).status).toBe(200);
    expect((await send("GET", "/v1/jobs/does-not-exist?wait=0.5")).status).toBe(404);
    expect((await send("GET", "/v1/flows?limit=100")).status).toBe(200);
  });

  test("the OpenAPI document states each numeric query parameter's minimum and maximum", async () => {
    const doc = (await send("GET", "/docs/json")).body;
    const numeric: string[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths))
      for (const [method, op] of Object.entries<any>(item))
        for (const p of op.parameters ?? []) {
          const s = p.schema ?? {};
          const kinds = [s.type, ...(s.anyOf ?? []).map((o: any) => o.type)];
          if (p.in !== "query" || !(kinds.includes("integer") || kinds.includes("number") || /^flowd-/.test(s.format ?? ""))) continue;
          numeric.push(`${method} ${path} ${p.name}`);
          expect({ at: `${method} ${path} ${p.name}`, min: typeof s.minimum, max: typeof s.maximum }).toEqual({ at: `${method} ${path} ${p.name}`, min: "number", max: "number" });
        }
    expect(numeric.length).toBeGreaterThanOrEqual(8);
  });
});

describe("requests refused before their body is read", () => {
  test("Content-Length: 1 GiB is 413 payload_too_large in SPEC's shape, at once", async () => {
    const head = `POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${stack.token}\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{"name":`;
    const res = await refused(() => rawRequest(portOf(stack.baseUrl), head), 413, "payload_too_large");
    expect(res.body.error.message).toContain("1073741824");
  });

  test("a request head over 16 KiB is 431 headers_too_large in SPEC's shape (Bun's cap raised)", async () => {
    const res = await refused(() => send("GET", "/v1/jobs", { base: apiUrl, headers: { "x-padding": "a".repeat(20_000) } }), 431, "headers_too_large");
    expect(res.body.error.details).toEqual({ limit: 16384 });
  });

  test("the same head gets Bun's own bodiless 431 where the cap is Bun's default (documented limitation)", async () => {
    const res = await send("GET", "/v1/jobs", { headers: { "x-padding": "a".repeat(20_000) } });
    expect(res.status).toBe(431);
    expect(res.text).toBe("");
  });

  test("a NUL in a header value never reaches flowd: Bun's parser answers 400", async () => {
    const before = await snapshot();
    const head = Buffer.from(
      `POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${stack.token}\r\nIdempotency-Key: a\0b\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"name":"echo"}`,
      "latin1",
    );
    const res = await rawRequest(portOf(stack.baseUrl), head);
    expect(res.status).toBe(400);
    expect(await snapshot()).toEqual(before);
  });

  test("an Idempotency-Key with bytes beyond ASCII is stored as text, not a 500", async () => {
    const body = '{"name":"echo"}';
    const head = Buffer.concat([
      Buffer.from(`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${stack.token}\r\nIdempotency-Key: key-`, "latin1"),
      Buffer.from([0xc3, 0xa9, 0xed, 0xa0, 0x80]),
      Buffer.from(`\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, "latin1"),
    ]);
    const first = await rawRequest(portOf(stack.baseUrl), head);
    expect(first.status).toBe(201);
    const again = await rawRequest(portOf(stack.baseUrl), head);
    expect({ status: again.status, id: again.body.id, replayed: again.headers.get("idempotent-replayed") }).toEqual({ status: 201, id: first.body.id, replayed: "true" });
  });
});

describe("the log never prints what a user sent", () => {
  const marker = (n: number) => `user-secret-${n}-${Date.now().toString(36)}`;

  beforeAll(async () => {
    // Two ways for a write to fail inside Postgres with the user's value in hand: a cast that
    // quotes it in its message (SQLSTATE 22P02) and a check constraint (23514).
    await stack.database.sql.unsafe(`
      create function odd_cast() returns trigger language plpgsql as $$
      begin
        if new.data ? 'n' then perform (new.data->>'n')::int; end if;
        return new;
      end $$;
      create trigger odd_cast before insert on jobs for each row execute function odd_cast();
      alter table jobs add constraint odd_no_secret check (not (data ? 'secret'));`);
  });
  afterAll(async () => {
    await stack.database.sql.unsafe(`drop trigger odd_cast on jobs; drop function odd_cast(); alter table jobs drop constraint odd_no_secret;`);
  });

  const logged = () => api.lines.join("\n");

  test("a value Postgres refuses (class 22) is a 400, and the log keeps the query, not the value", async () => {
    const secret = marker(1);
    const res = await refused(() => send("POST", "/v1/jobs", { base: apiUrl, raw: job(JSON.stringify({ n: secret })) }), 400, "invalid_input");
    expect(res.text).not.toContain(secret);
    const line = await api.waitForLine(/a value reached Postgres unchecked/, 10_000);
    const entry = JSON.parse(line);
    expect(entry.err.cause).toMatchObject({ class: "PostgresError", code: "22P02" });
    expect(entry.err.message).toContain('Failed query: insert into "jobs"');
    expect(entry.err.message).toContain("(parameters not logged)");
    expect(logged()).not.toContain(secret);
  });

  test("a failed write (500) logs the error's class, code and query, not its parameters", async () => {
    const secret = marker(2);
    const res = await send("POST", "/v1/jobs", { base: apiUrl, raw: job(JSON.stringify({ secret, note: secret })), headers: { "idempotency-key": secret } });
    expect(res.status).toBe(500);
    expectErrorShape(res, "internal_error");
    const entry = JSON.parse(await api.waitForLine(/"msg":"unhandled error"/, 10_000));
    expect(entry.err.cause).toMatchObject({ class: "PostgresError", code: "23514" });
    expect(entry.err.stack).toContain("\n    at ");
    expect(logged()).not.toContain(secret);
  });

  test("refused bodies and queries log nothing of theirs either", async () => {
    const secret = marker(3);
    const from = api.lines.length;
    for (const [path, wrap] of creates) await send("POST", path, { base: apiUrl, raw: wrap(`{"s":"${secret}\\ud800","n":1e400}`) });
    await send("GET", `/v1/jobs?name=${secret}%00`, { base: apiUrl });
    await send("GET", `/v1/events?after=9${secret.length}99999999999999999999`, { base: apiUrl });
    expect(logged()).not.toContain(secret);
    expect(api.lines.slice(from).filter((l) => /"level":"(error|warn)"/.test(l))).toEqual([]);
  });
});
