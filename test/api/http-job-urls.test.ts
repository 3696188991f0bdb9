import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { countKeys } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";

// With FLOWD_ALLOW_PRIVATE_URLS=false an `http` job whose data.url names a loopback, private,
// link-local or metadata address is refused at creation, as a webhook to it is: 400 invalid_url
// naming data.url, in flows, single jobs, bulk and schedules, with nothing written. The addresses
// below are only values to refuse: no worker runs here, and nothing connects anywhere.
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "hurl", env: { FLOWD_ALLOW_PRIVATE_URLS: "false" } });
});
afterAll(async () => {
  await stack?.stop();
});

const FORBIDDEN = [
  "http://127.0.0.1:8080/hook",
  "http://localhost/x",
  "https://LOCALHOST./x",
  "http://api.localhost/x",
  "http://10.0.0.1/x",
  "http://192.168.1.1/x",
  "http://169.254.169.254/latest/meta-data/",
  "http://[::1]/x",
  "http://[::ffff:127.0.0.1]/x",
  "http://[fd00::1]/x",
  "http://0x7f000001/x", // the URL parser reads it as 127.0.0.1
  "http://0.0.0.0/x",
];

async function written() {
  const [row] = await stack.database.sql<{ n: number }[]>`
    select (select count(*) from flows) + (select count(*) from jobs) + (select count(*) from schedules) as n`;
  return { rows: Number(row!.n), keys: await countKeys(stack.config.prefix) };
}

const http = (url: string) => ({ name: "http", data: { url, method: "POST" } });
const routes: [title: string, path: string, body: (url: string) => unknown, where: string][] = [
  ["a single job", "/v1/jobs", (url) => http(url), "/data/url"],
  ["a flow's child", "/v1/flows", (url) => ({ name: "f", root: { name: "echo", children: [{ name: "echo" }, http(url)] } }), "/root/children/1/data/url"],
  ["a bulk create's second job", "/v1/jobs/bulk", (url) => ({ jobs: [{ name: "echo" }, http(url)] }), "/jobs/1/data/url"],
  ["a schedule's job", "/v1/schedules", (url) => ({ name: "s", every: 60_000, job: http(url) }), "/job/data/url"],
];

describe("http jobs to addresses that are not public", () => {
  for (const [title, path, body, where] of routes)
    test(`${title} is refused with 400 invalid_url naming ${where}, for every kind of address`, async () => {
      const before = await written();
      for (const url of FORBIDDEN) {
        const res = await stack.http("POST", path, body(url));
        if (res.status !== 400 || res.body?.error?.code !== "invalid_url")
          throw new Error(`${url} on ${path}: expected 400 invalid_url, got ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
        expect(res.body.error.message).toContain(where);
        expect(res.body.error.message).toContain("FLOWD_ALLOW_PRIVATE_URLS");
        expect(res.body.error.details).toEqual([{ path: where, message: expect.any(String) }]);
      }
      expect(await written()).toEqual(before);
    });

  test("a webhook to the same address is refused with the same code", async () => {
    const hook = await stack.http("POST", "/v1/webhooks", { url: "http://169.254.169.254/x", events: ["*"] });
    const job = await stack.http("POST", "/v1/jobs", http("http://169.254.169.254/x"));
    expect(hook.body.error.code).toBe("invalid_url");
    expect(job.body.error.code).toBe("invalid_url");
  });

  test("a host name is not resolved at creation: it is checked when the job runs, after DNS", async () => {
    // .invalid never resolves (RFC 6761); a creation that asked DNS would refuse it or wait on it.
    const res = await stack.http("POST", "/v1/jobs", http("http://flowd-test.invalid/x"));
    expect(res.status).toBe(201);
    expect(res.body.data.url).toBe("http://flowd-test.invalid/x");
  });
});
