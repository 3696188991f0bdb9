import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// The API in this process with room for two creates, held open by clients that send headers and
// part of a body: the places stay taken while the body plugin waits for the rest. The rule itself
// (order, deadline, estimates) is tested alone in admission-queue.test.ts.
const WAIT_MS = 1000;
let stack: Stack;
const held: Socket[] = [];
beforeAll(async () => {
  stack = await startStack({
    workers: 0,
    tag: "admit-api",
    env: { FLOWD_MAX_CREATES_IN_FLIGHT: "2", FLOWD_MAX_CREATE_BYTES_IN_FLIGHT: "100000", FLOWD_ADMISSION_WAIT_MS: String(WAIT_MS) },
  });
});
afterEach(async () => {
  for (const s of held.splice(0)) s.destroy();
  // Each test starts from an idle process: the places its predecessor held are back.
  await waitFor(async () => (await inFlight()).creates === 0 && (await waiting()) === 0, 5000, "every place back");
});
afterAll(async () => {
  await stack?.stop();
});

const port = () => Number(new URL(stack.baseUrl).port);
const inFlight = async () => {
  const m = await metrics();
  return { creates: m("flowd_creates_in_flight"), bytes: m("flowd_create_bytes_in_flight") };
};
const waiting = async () => (await metrics())("flowd_creates_waiting");
async function metrics() {
  const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
  return (name: string) => text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
}

/** A POST whose body arrives only in part (`sent` of `length` bytes), kept open until the test ends. */
async function holdCreate(path: string, length: number, sent = '{"name":'): Promise<Socket> {
  const socket = connect(port(), "127.0.0.1");
  held.push(socket);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.on("error", () => {});
  socket.write(
    `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${stack.token}\r\n` +
      `content-type: application/json\r\ncontent-length: ${length}\r\n\r\n${sent}`,
  );
  return socket;
}

/** Sends only the headers of a POST declaring `length` bytes and resolves with the raw answer. */
async function headersOnly(path: string, length: number): Promise<string> {
  const socket = await holdCreate(path, length, "");
  let answer = "";
  socket.on("data", (chunk) => (answer += chunk.toString()));
  return waitFor(() => (answer.includes("\r\n\r\n") && answer.includes("}}") ? answer : null), 5000, "an answer sent before any body byte");
}

const flow = (name: string) => ({ name, root: { name: "echo", data: {} } });

describe("admission over HTTP", () => {
  test("with every place taken, creates wait FLOWD_ADMISSION_WAIT_MS, then 503 overloaded — their body never read — and write nothing", async () => {
    await holdCreate("/v1/flows", 5000);
    await holdCreate("/v1/jobs", 5000);
    await waitFor(async () => (await inFlight()).creates === 2, 5000, "two creates in flight");

    // No body byte is ever sent, so an answer can only come from refusing without reading it.
    const t0 = performance.now();
    const answers = await Promise.all(["/v1/flows", "/v1/jobs", "/v1/schedules"].map((path) => headersOnly(path, 2000)));
    const refused = await stack.http("POST", "/v1/flows", flow("refused"), { headers: { "idempotency-key": "k-refused" } });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(WAIT_MS - 50);
    for (const raw of answers) {
      expect(raw).toStartWith("HTTP/1.1 503");
      expect(raw.toLowerCase()).toContain("retry-after: 1");
      const body = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
      expect(body.error.code).toBe("overloaded");
      expect(body.error.message).toContain(`2 creates in flight (FLOWD_MAX_CREATES_IN_FLIGHT) and no room came within ${WAIT_MS} ms`);
    }
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");

    // Reads are not creates: they go on while creates wait or are refused.
    expect((await stack.http("GET", "/v1/flows")).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);

    const m = await metrics();
    expect(m("flowd_creates_refused_total")).toBeGreaterThanOrEqual(4);
    expect(m("flowd_creates_waiting")).toBe(0);
    const [rows] = await stack.database.sql<{ flows: number; jobs: number }[]>`
      select (select count(*)::int from flows) as flows, (select count(*)::int from jobs) as jobs`;
    expect(rows).toEqual({ flows: 0, jobs: 0 });
  });

  test("a create waiting for room goes in as soon as a place comes back, and answers 201", async () => {
    const a = await holdCreate("/v1/flows", 5000);
    await holdCreate("/v1/flows", 5000);
    await waitFor(async () => (await inFlight()).creates === 2, 5000, "two creates in flight");
    const waiter = stack.http("POST", "/v1/flows", flow("waited"));
    await waitFor(async () => (await waiting()) === 1, 5000, "the create waiting");
    const before = (await metrics())("flowd_creates_waited_total");
    a.destroy();
    const res = await waiter;
    expect(res.status).toBe(201);
    expect(res.body.name).toBe("waited");
    expect((await metrics())("flowd_creates_waited_total")).toBe(before + 1);
  });

  test("a client that goes away while waiting gives up its place; nothing is read or written for it", async () => {
    await holdCreate("/v1/flows", 5000);
    await holdCreate("/v1/flows", 5000);
    await waitFor(async () => (await inFlight()).creates === 2, 5000, "two creates in flight");
    const [before] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows`;
    const leaving = await holdCreate("/v1/flows", 200, JSON.stringify(flow("left")).padEnd(200));
    await waitFor(async () => (await waiting()) === 1, 5000, "the create waiting");
    const abandoned = (await metrics())("flowd_creates_abandoned_total");
    leaving.destroy();
    await waitFor(async () => (await waiting()) === 0, 1000, "the waiter gone well before its deadline");
    expect((await metrics())("flowd_creates_abandoned_total")).toBe(abandoned + 1);
    expect((await inFlight()).creates).toBe(2);
    const [after] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows`;
    expect(after).toEqual(before!);
  });

  test("a client that goes away mid-body gives its slot back; the next create is accepted", async () => {
    const a = await holdCreate("/v1/flows", 5000);
    const b = await holdCreate("/v1/flows", 5000);
    await waitFor(async () => (await inFlight()).creates === 2, 5000, "two creates in flight");
    expect((await stack.http("POST", "/v1/flows", flow("full"))).status).toBe(503);
    a.destroy();
    b.destroy();
    await waitFor(async () => (await inFlight()).creates === 0, 5000, "the aborted creates' slots back");
    const ok = await stack.http("POST", "/v1/flows", flow("after abort"));
    expect(ok.status).toBe(201);
    expect(await inFlight()).toEqual({ creates: 0, bytes: 0 });
  });

  test("refusals of other kinds (401, 400, 413, invalid JSON) give the slot back too", async () => {
    expect((await stack.http("POST", "/v1/flows", flow("no token"), { token: null })).status).toBe(401);
    expect((await stack.http("POST", "/v1/flows", { name: 1 })).status).toBe(400);
    expect((await stack.http("POST", "/v1/jobs", undefined, { raw: "{oops" })).status).toBe(400);
    expect((await stack.http("POST", "/v1/schedules", { name: "s", every: 1000, job: { name: "nope" } })).status).toBe(400);
    expect((await stack.http("POST", "/v1/flows", undefined, { raw: "x".repeat(stack.config.bodyLimit + 1) })).status).toBe(413);
    await waitFor(async () => (await inFlight()).creates === 0, 5000, "every slot back");
    expect(await inFlight()).toEqual({ creates: 0, bytes: 0 });
  });

  test("the bytes of bodies in flight are bounded too", async () => {
    await holdCreate("/v1/flows", 90_000);
    await waitFor(async () => (await inFlight()).bytes === 90_000, 5000, "one large create in flight");
    const raw = await headersOnly("/v1/flows", 20_000);
    expect(raw).toStartWith("HTTP/1.1 503");
    expect(raw).toContain("no room came within");
    expect(raw).toContain("100000 bytes of create bodies in flight");
    // A small one still fits beside it.
    expect((await stack.http("POST", "/v1/flows", flow("small"))).status).toBe(201);
  });

  test("sequential clients at the bound never see a refusal: a slot is back before the next request", async () => {
    await waitFor(async () => (await inFlight()).creates === 0, 5000, "the earlier tests' slots back");
    const statuses = await Promise.all(
      [0, 1].map(async (c) => {
        const seen: number[] = [];
        for (let i = 0; i < 25; i++) seen.push((await stack.http("POST", "/v1/jobs", { name: "echo", data: { c, i } })).status);
        return seen;
      }),
    );
    expect(statuses.flat().filter((s) => s !== 201)).toEqual([]);
  });
});
