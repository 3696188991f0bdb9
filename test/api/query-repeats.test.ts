import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/stack";

// One rule for every route: a query parameter is given at most once. A repeat used to keep the last
// value without a word (`?status=failed&status=completed` listed completed flows only), which hides
// a client's bug; now it is 400 invalid_input naming the parameter, before routing or auth.
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "qrep" });
});
afterAll(async () => {
  await stack?.stop();
});

const repeats: [path: string, name: string][] = [
  ["/v1/flows?status=failed&status=completed", "status"],
  ["/v1/flows?limit=1&name=a&limit=2", "limit"],
  ["/v1/flows?data=%7B%7D&data=%7B%22a%22%3A1%7D", "data"],
  ["/v1/jobs?status=failed&status=failed", "status"],
  ["/v1/jobs?scheduleId=a&scheduleId=b", "scheduleId"],
  ["/v1/jobs?cursor=a&cursor=b", "cursor"],
  ["/v1/flows/x?wait=1&wait=2", "wait"],
  ["/v1/jobs/x?wait=0&wait=0", "wait"],
  ["/v1/events?after=1&after=2", "after"],
  ["/v1/events?flowId=a&limit=5&flowId=b", "flowId"],
  ["/v1/stats?window=1h&window=2h", "window"],
  ["/v1/schedules?limit=1&limit=1", "limit"],
  ["/v1/webhooks?limit=1&limit=2", "limit"],
  ["/v1/webhooks/x/deliveries?before=1&before=2", "before"],
  // Names are compared as the route reads them: percent-decoded.
  ["/v1/flows?status=failed&%73tatus=completed", "status"],
  // A parameter no route knows is still one parameter given twice.
  ["/v1/flows?foo=1&foo=2", "foo"],
];

describe("a query parameter given twice", () => {
  for (const [path, name] of repeats)
    test(`GET ${path} is 400 invalid_input naming '${name}'`, async () => {
      const res = await stack.http("GET", path);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_input");
      expect(res.body.error.message).toBe(`The query parameter '${name}' is given more than once; give each parameter once.`);
      expect(res.body.error.details).toEqual([{ path: `/${name}`, message: "given more than once" }]);
    });

  test("POST routes and the socket's ?token= follow the same rule", async () => {
    const res = await stack.http("POST", "/v1/jobs?x=1&x=2", { name: "echo" });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("/x");
    expect((await stack.database.sql`select count(*)::int as n from jobs`)[0]!.n).toBe(0);
    const ws = await fetch(`${stack.baseUrl}/v1/ws?token=${stack.token}&token=${stack.token}`);
    expect(ws.status).toBe(400);
  });

  test("each parameter once still works, empty values and all", async () => {
    expect((await stack.http("GET", "/v1/flows?status=failed&limit=5&name=&data=%7B%7D")).status).toBe(200);
    expect((await stack.http("GET", "/v1/jobs?status=completed&name=a")).status).toBe(200);
    expect((await stack.http("GET", "/v1/events?after=0&limit=5")).status).toBe(200);
  });

  test("the OpenAPI document states the rule", async () => {
    const doc = (await stack.http("GET", "/docs/json")).body;
    expect(doc.info.description).toContain("given at most once");
  });
});
