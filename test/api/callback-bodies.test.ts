import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/stack";
import { startTaskReceiver } from "../helpers/task-receiver";
import { waitFor } from "../helpers/wait";

// The callback routes of parked http tasks read their bodies by the same rule as every other
// route: JSON only, malformed JSON a 400, with the same codes and messages, and a refused callback
// leaves the job exactly as it was (still parked, its URL still good for one real answer).
let stack: Stack;
let receiver: ReturnType<typeof startTaskReceiver>;
beforeAll(async () => {
  receiver = startTaskReceiver(() => ({ status: 202 }));
  stack = await startStack({ workers: 0, tag: "cbody" });
  await stack.startWorker({ FLOWD_PUBLIC_URL: stack.baseUrl });
}, 60_000);
afterAll(async () => {
  await stack?.stop();
  receiver?.stop();
});

const row = async (id: string) => {
  const [r] = await stack.database.sql`select status, result, error, updated_at, attempts_made, parked_until from jobs where id = ${id}`;
  return r;
};

/** A parked task and its callback URL. */
async function parked(path: string) {
  const created = await stack.http("POST", "/v1/jobs", { name: "http", data: { url: receiver.url(path) } });
  expect(created.status).toBe(201);
  const call = await waitFor(() => receiver.callsTo(path)[0], 20_000, `the call to ${path}`);
  // Parked: the 202 was read and the row marked (parked_until set); after that only a callback or a
  // deadline changes it.
  await waitFor(async () => (await row(created.body.id))?.parked_until, 10_000, "the row marked parked");
  return { id: created.body.id as string, url: call.headers["flowd-callback-url"]! };
}


const post = async (url: string, body: string | undefined, contentType?: string) => {
  const res = await fetch(url, { method: "POST", headers: contentType ? { "content-type": contentType } : {}, body });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

/** What a /v1 route answers for the same request: the reference the callbacks must match. */
async function reference(body: string | undefined, contentType?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${stack.token}`, ...(contentType ? { "content-type": contentType } : {}) };
  const res = await fetch(`${stack.baseUrl}/v1/jobs`, { method: "POST", headers, body });
  return { status: res.status, body: (await res.json()) as any };
}

describe("callback bodies", () => {
  const cases: { title: string; action: string; body: string; type?: string }[] = [
    // A browser's fetch labels a string text/plain; Bun's sends no content-type at all.
    { title: "a string sent by plain fetch", action: "complete", body: '{"result":{"ok":true}}' },
    { title: "text/plain, said outright", action: "complete", body: '{"result":1}', type: "text/plain" },
    { title: "a form", action: "complete", body: "result=1", type: "application/x-www-form-urlencoded" },
    { title: "text/plain on fail", action: "fail", body: '{"message":"no"}', type: "text/plain" },
    { title: "malformed JSON", action: "complete", body: "{result: not json}", type: "application/json" },
    { title: "malformed JSON on fail", action: "fail", body: '{"message":', type: "application/json" },
  ];
  for (const c of cases)
    test(`${c.title} on /${c.action} is refused like a /v1 body, and the job does not change`, async () => {
      const task = await parked(`/${c.action}-${cases.indexOf(c)}`);
      const before = await row(task.id);
      const res = await post(`${task.url}/${c.action}`, c.body, c.type);
      const expected = await reference(c.body, c.type);
      expect(expected.status).toBe(400);
      expect(res.status).toBe(400);
      expect(res.body).toEqual(expected.body);
      expect(await row(task.id)).toEqual(before);
      expect(before!.status).toBe("active");
      // The URL is still good for the real answer.
      const done = await post(`${task.url}/complete`, JSON.stringify({ result: "fine" }), "application/json");
      expect(done.status).toBe(200);
      await waitFor(async () => (await row(task.id))!.status === "completed", 20_000, "completed");
      expect((await row(task.id))!.result).toBe("fine");
    }, 40_000);

  test("an empty complete is refused as an empty /v1 body is: the body is `{ result? }`, `{}` for none", async () => {
    const task = await parked("/empty");
    const before = await row(task.id);
    const res = await post(`${task.url}/complete`, undefined);
    expect(res.status).toBe(400);
    expect(res.body).toEqual((await reference(undefined)).body);
    expect(await row(task.id)).toEqual(before);
    expect((await post(`${task.url}/complete`, "{}", "application/json")).status).toBe(200);
    await waitFor(async () => (await row(task.id))!.status === "completed", 20_000, "completed");
    expect((await row(task.id))!.result).toBeNull();
  }, 40_000);
});
