import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { listFlowsQuery } from "../../src/db/queries/flows";
import { listJobsQuery } from "../../src/db/queries/jobs";
import { startStack, type Stack } from "../helpers/stack";

// `name=` (prefix) and `data=` (containment) on GET /v1/flows and /v1/jobs: what they match, what
// they refuse, and that a data search goes through its GIN index.
let stack: Stack;
let bob: string;
const ids = {} as Record<"inv1" | "inv2" | "report" | "bobs" | "job1" | "job2" | "bobJob", string>;

const flow = (name: string, data: Record<string, unknown>, childData: Record<string, unknown> = {}) => ({
  name,
  root: { name: "echo", data, children: [{ name: "echo", data: childData }] },
});

beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "search" });
  bob = await stack.newUser("bob");
  const made = async (path: string, body: unknown, token?: string) => {
    const res = await stack.http("POST", path, body, { token });
    if (res.status !== 201) throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  };
  ids.inv1 = await made("/v1/flows", flow("invoice-1", { customer: 42, tags: ["eu", "vip"], address: { country: "FR" } }));
  ids.inv2 = await made("/v1/flows", flow("invoice-2", { customer: 7 }, { customer: 42 }));
  ids.report = await made("/v1/flows", flow("report_%", { customer: 42, kind: "monthly" }));
  ids.bobs = await made("/v1/flows", flow("invoice-bob", { customer: 42 }), bob);
  ids.job1 = await made("/v1/jobs", { name: "echo", data: { order: 1, region: "eu" } });
  ids.job2 = await made("/v1/jobs", { name: "sleep", data: { ms: 1, order: 2 } });
  ids.bobJob = await made("/v1/jobs", { name: "echo", data: { order: 1 } }, bob);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

const listed = async (path: string, token?: string) => {
  const res = await stack.http("GET", path, undefined, { token });
  expect(res.status).toBe(200);
  return (res.body.items as { id: string }[]).map((i) => i.id);
};
const q = (v: unknown) => encodeURIComponent(JSON.stringify(v));

describe("GET /v1/flows filters", () => {
  test("name= is a prefix, taken literally", async () => {
    expect(await listed("/v1/flows?name=invoice")).toEqual([ids.inv2, ids.inv1]);
    expect(await listed("/v1/flows?name=invoice-1")).toEqual([ids.inv1]);
    expect(await listed(`/v1/flows?name=${encodeURIComponent("report_%")}`)).toEqual([ids.report]);
    // `_` and `%` are not wildcards: "invoice_" matches nothing.
    expect(await listed("/v1/flows?name=invoice_")).toEqual([]);
    expect(await listed("/v1/flows?name=%25")).toEqual([]);
  });

  test("data= matches the root's data by containment, only the user's own flows", async () => {
    expect(await listed(`/v1/flows?data=${q({ customer: 42 })}`)).toEqual([ids.report, ids.inv1]);
    expect(await listed(`/v1/flows?data=${q({ address: { country: "FR" } })}`)).toEqual([ids.inv1]);
    expect(await listed(`/v1/flows?data=${q({ tags: ["vip"] })}`)).toEqual([ids.inv1]);
    expect(await listed(`/v1/flows?data=${q({ customer: 43 })}`)).toEqual([]);
    // invoice-2's child has customer 42, its root does not.
    expect(await listed(`/v1/flows?data=${q({ customer: 7 })}`)).toEqual([ids.inv2]);
    expect(await listed(`/v1/flows?data=${q({ customer: 42 })}`, bob)).toEqual([ids.bobs]);
    expect(await listed(`/v1/flows?data=${q({})}`)).toHaveLength(3);
  });

  test("filters combine, and pages follow the cursor", async () => {
    expect(await listed(`/v1/flows?name=invoice&data=${q({ customer: 42 })}`)).toEqual([ids.inv1]);
    expect(await listed(`/v1/flows?status=completed&data=${q({ customer: 42 })}`)).toEqual([]);
    const first = await stack.http("GET", `/v1/flows?data=${q({ customer: 42 })}&limit=1`);
    expect(first.body.items.map((i: { id: string }) => i.id)).toEqual([ids.report]);
    const second = await stack.http("GET", `/v1/flows?data=${q({ customer: 42 })}&limit=1&cursor=${first.body.nextCursor}`);
    expect(second.body.items.map((i: { id: string }) => i.id)).toEqual([ids.inv1]);
  });
});

describe("GET /v1/jobs filters", () => {
  test("name= prefix and data= containment", async () => {
    expect(await listed("/v1/jobs?name=ec")).toEqual([ids.job1]);
    expect(await listed(`/v1/jobs?data=${q({ order: 2 })}`)).toEqual([ids.job2]);
    expect(await listed(`/v1/jobs?data=${q({ region: "eu" })}&name=echo`)).toEqual([ids.job1]);
    expect(await listed(`/v1/jobs?data=${q({ order: 1 })}`, bob)).toEqual([ids.bobJob]);
  });
});

describe("bad input", () => {
  test.each([
    ["not JSON", "{customer:42}"],
    ["an array", "[1,2]"],
    ["a number", "42"],
    ["a string", '"x"'],
    ["null", "null"],
  ])("data= that is %s is 400 invalid_input", async (_what, value) => {
    for (const path of ["/v1/flows", "/v1/jobs"]) {
      const res = await stack.http("GET", `${path}?data=${encodeURIComponent(value)}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_input");
      expect(res.body.error.message).toContain("'data'");
      expect(res.body.error.details[0].path).toBe("/data");
    }
  });

  // The same rule as bodies (src/unstorable.ts), checked before the database: escapes JSON allows
  // but Postgres cannot keep or compare were a 400 "Postgres refused it" with a warn log, and 1e400
  // (Infinity, which JSON.stringify sends as null) was searched for as null.
  test.each([
    ["a NUL in a string", '{"a":"\\u0000"}', "/data/a", "NUL"],
    ["a NUL in a key", '{"x\\u0000":1}', "/data/x\u0000", "NUL"],
    ["an unpaired surrogate", '{"a":{"b":"\\ud800"}}', "/data/a/b", "surrogate"],
    ["a number beyond ±1.8e308", '{"n":1e400}', "/data/n", "1.7976931348623157e308"],
  ])("data= holding %s is 400 invalid_input naming 'data' and where, as in a body", async (_what, value, where, words) => {
    for (const path of ["/v1/flows", "/v1/jobs"]) {
      const res = await stack.http("GET", `${path}?data=${encodeURIComponent(value)}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_input");
      expect(res.body.error.message).toContain("'data'");
      expect(res.body.error.message).toContain(words);
      expect(res.body.error.message).not.toContain("Postgres");
      expect(res.body.error.details[0].path).toBe(where);
    }
    // A body holding the same value is refused too.
    const body = await stack.http("POST", "/v1/jobs", undefined, { raw: `{"name":"echo","data":${value}}` });
    expect(body.status).toBe(400);
    expect(body.body.error.code).toBe("invalid_input");
  });

  test("an over-long data= or name= is 400", async () => {
    const long = await stack.http("GET", `/v1/flows?data=${q({ x: "a".repeat(5000) })}`);
    expect(long.status).toBe(400);
    expect(long.body.error.code).toBe("invalid_input");
    expect((await stack.http("GET", `/v1/jobs?name=${"a".repeat(101)}`)).status).toBe(400);
  });
});

/**
 * The plan Postgres picks, with its statistics: a user with 20,000 flows and 20,000 jobs, of which
 * a handful match. No planner setting is forced, so this is the plan a real search gets.
 */
const planOf = async (query: { toSQL(): { sql: string; params: unknown[] } }) => {
  const { sql: text, params } = query.toSQL();
  const rows = await stack.database.sql.unsafe(`explain ${text}`, params as string[]);
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
};

describe("data= goes through a GIN index", () => {
  const user = "u_explain";
  beforeAll(async () => {
    const sql = stack.database.sql;
    await sql`insert into users (id, name) values (${user}, 'explain')`;
    await sql`insert into flows (id, user_id, name, status, root_id, job_count, created_at, updated_at)
      select 'fx' || i, ${user}, 'flow-' || i, 'completed', 'rx' || i, 1, now() - i * interval '1 s', now() from generate_series(1, 20000) i`;
    await sql`insert into flow_jobs (id, job_id, user_id, flow_id, name, queue_name, data, opts, status, created_at, updated_at)
      select 'rx' || i, 'rxj' || i, ${user}, 'fx' || i, 'echo', 'flows', jsonb_build_object('customer', i % 5000, 'kind', 'k' || (i % 7)), '{}', 'completed', now(), now()
      from generate_series(1, 20000) i`;
    await sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status, created_at, updated_at)
      select 'jx' || i, 'jxj' || i, ${user}, 'echo', 'jobs', jsonb_build_object('order', i, 'region', 'r' || (i % 9)), '{}', 'completed', now() - i * interval '1 s', now()
      from generate_series(1, 20000) i`;
    await sql`analyze flows`;
    await sql`analyze flow_jobs`;
    await sql`analyze jobs`;
  }, 60_000);

  test("flows: the roots-only index on flow_jobs", async () => {
    const query = listFlowsQuery(stack.database.db, user, { data: { customer: 1234 }, limit: 20 });
    const plan = await planOf(query);
    if (process.env.SHOW_PLANS) console.log(plan);
    expect(plan).toContain("flow_jobs_root_data_idx");
    expect((await query).map((f) => f.id)).toEqual(["fx1234", "fx6234", "fx11234", "fx16234"]);
  });
  test("jobs: the index on jobs.data", async () => {
    const query = listJobsQuery(stack.database.db, user, { data: { order: 777 }, limit: 20 });
    expect(await planOf(query)).toContain("jobs_data_idx");
    expect((await query).map((j) => j.id)).toEqual(["jx777"]);
  });
});
