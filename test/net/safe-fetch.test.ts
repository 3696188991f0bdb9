import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { assertPublicUrl, isBlockedAddress, SafeFetchError, safeFetch } from "../../src/net/safe-fetch";

// Only loopback servers: this suite must never make outbound requests (IP literals skip DNS entirely).

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SafeFetchError);
    return (err as SafeFetchError).code;
  }
  throw new Error("expected a SafeFetchError, but the call succeeded");
}

describe("isBlockedAddress", () => {
  const blocked = [
    "127.0.0.1",
    "10.1.2.3",
    "100.64.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "0.0.0.0",
    "198.18.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fd00::1",
    "fc00::1",
    "fe80::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "64:ff9b::10.0.0.1",
    "::127.0.0.1",
    "0:0:0:0:0:ffff:7f00:0001",
    "[::1]",
    "fe80::1%eth0",
  ];
  for (const ip of blocked) test(`blocks ${ip}`, () => expect(isBlockedAddress(ip)).toBe(true));

  const allowed = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "172.32.0.1",
    "100.128.0.1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2001:4860:4860::8888",
  ];
  for (const ip of allowed) test(`allows ${ip}`, () => expect(isBlockedAddress(ip)).toBe(false));

  test("fails closed on things that are not IP addresses", () => {
    for (const junk of ["", "example.com", "1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4:1", "12345::"]) {
      expect(isBlockedAddress(junk)).toBe(true);
    }
  });
});

describe("assertPublicUrl", () => {
  test("refuses non-http schemes, naming the allowed ones", async () => {
    const err = await assertPublicUrl("ftp://x", false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafeFetchError);
    expect((err as SafeFetchError).code).toBe("invalid_url");
    expect((err as SafeFetchError).message).toContain("http:");
    expect((err as SafeFetchError).message).toContain("https:");
    expect(await codeOf(assertPublicUrl("file:///etc/passwd", false))).toBe("invalid_url");
    expect(await codeOf(assertPublicUrl("not a url", false))).toBe("invalid_url");
  });

  test("refuses private, loopback and metadata addresses", async () => {
    for (const url of [
      "http://127.0.0.1",
      "http://[::1]/",
      "http://169.254.169.254/latest",
      "http://10.0.0.1",
      "http://localhost:1234",
      "http://api.localhost/",
      "http://LOCALHOST./",
      "http://0x7f.1/", // the URL parser normalises this to 127.0.0.1
      "http://[::ffff:127.0.0.1]/",
    ]) {
      expect(await codeOf(assertPublicUrl(url, false))).toBe("blocked_address");
    }
  });

  test("the refusal names the host and address and how to allow it", async () => {
    const err = await assertPublicUrl("http://169.254.169.254/latest", false).catch((e: unknown) => e);
    expect((err as SafeFetchError).message).toContain("169.254.169.254");
    expect((err as SafeFetchError).message).toContain("FLOWD_ALLOW_PRIVATE_URLS=true");
  });

  test("accepts public IP literals without DNS", async () => {
    const v4 = await assertPublicUrl("http://93.184.215.14/", false);
    expect(v4.address).toBe("93.184.215.14");
    expect(v4.url.hostname).toBe("93.184.215.14");
    const v6 = await assertPublicUrl("https://[2606:4700::1111]:8443/x", false);
    expect(v6.address).toBe("2606:4700::1111");
  });

  test("allowPrivate skips the address checks but still requires http(s)", async () => {
    expect((await assertPublicUrl("http://127.0.0.1:1/", true)).address).toBe("127.0.0.1");
    expect(await codeOf(assertPublicUrl("ftp://127.0.0.1/", true))).toBe("invalid_url");
  });
});

describe("safeFetch against local servers", () => {
  const hits = { ok: 0, redirectTarget: 0 };
  let ok: Server<undefined>;
  let redirectTarget: Server<undefined>;
  let redirector: Server<undefined>;
  let big: Server<undefined>;
  let slow: Server<undefined>;
  let stalling: Server<undefined>;
  let refusedPort: number;

  beforeAll(async () => {
    ok = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        hits.ok++;
        return new Response(`hello ${req.method} ${await req.text()}`, { headers: { "x-test": "yes" } });
      },
    });
    redirectTarget = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => {
        hits.redirectTarget++;
        return new Response("you followed the redirect");
      },
    });
    redirector = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => new Response(null, { status: 302, headers: { location: `http://127.0.0.1:${redirectTarget.port}/` } }),
    });
    const chunk = new Uint8Array(64 * 1024).fill(97);
    big = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => {
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent >= 5 * 1024 * 1024) return controller.close();
            sent += chunk.byteLength;
            controller.enqueue(chunk);
          },
        });
        return new Response(stream);
      },
    });
    slow = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async () => {
        await Bun.sleep(5000);
        return new Response("too late");
      },
    });
    stalling = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(new TextEncoder().encode("first bytes"));
              await Bun.sleep(5000);
              controller.close();
            },
          }),
        ),
    });
    const gone = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("x") });
    refusedPort = gone.port!;
    await gone.stop(true);
  });

  afterAll(async () => {
    await Promise.all([ok, redirectTarget, redirector, big, slow, stalling].map((s) => s.stop(true)));
  });

  const local = { allowPrivate: true };

  test("returns status, headers and body", async () => {
    const res = await safeFetch(`http://127.0.0.1:${ok.port}/`, { method: "POST", body: "ping" }, local);
    expect(res.status).toBe(200);
    expect(res.body).toBe("hello POST ping");
    expect(res.headers.get("x-test")).toBe("yes");
    expect(res.durationMs).toBeGreaterThanOrEqual(0);
  });

  test("returns a 302 as-is and does not follow it", async () => {
    const res = await safeFetch(`http://127.0.0.1:${redirector.port}/`, {}, local);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(`http://127.0.0.1:${redirectTarget.port}/`);
    expect(hits.redirectTarget).toBe(0);
  });

  test("stops reading a body larger than maxResponseBytes", async () => {
    const url = `http://127.0.0.1:${big.port}/`;
    expect(await codeOf(safeFetch(url, {}, { ...local, maxResponseBytes: 1024 * 1024 }))).toBe("response_too_large");
  });

  test("times out a slow server", async () => {
    const started = performance.now();
    expect(await codeOf(safeFetch(`http://127.0.0.1:${slow.port}/`, {}, { ...local, timeoutMs: 300 }))).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("the timeout also covers a body that stalls after the headers", async () => {
    const started = performance.now();
    expect(await codeOf(safeFetch(`http://127.0.0.1:${stalling.port}/`, {}, { ...local, timeoutMs: 300 }))).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("reports the caller's cancellation as aborted", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const url = `http://127.0.0.1:${slow.port}/`;
    expect(await codeOf(safeFetch(url, {}, { ...local, timeoutMs: 3000, signal: controller.signal }))).toBe("aborted");
    expect(await codeOf(safeFetch(url, {}, { ...local, signal: AbortSignal.abort() }))).toBe("aborted");
  });

  test("maps a refused connection to network", async () => {
    expect(await codeOf(safeFetch(`http://127.0.0.1:${refusedPort}/`, {}, local))).toBe("network");
  });

  test("without allowPrivate a loopback server is refused before any request", async () => {
    const before = hits.ok;
    const code = await codeOf(safeFetch(`http://127.0.0.1:${ok.port}/`, {}, { allowPrivate: false }));
    expect(code).toBe("blocked_address");
    expect(hits.ok).toBe(before);
  });
});
