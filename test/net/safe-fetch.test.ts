import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalAddress } from "../../src/net/public-address";
import { assertPublicUrl, classifyAddress, isBlockedAddress, SafeFetchError, safeFetch, type Resolve } from "../../src/net/safe-fetch";

// Only loopback servers: this suite must never make outbound requests. Public addresses appear only as
// inputs to the classifier or as resolver answers for URLs that are refused or only checked, never fetched.

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
    // IPv4 special-purpose registry, one address inside each block and its edges where they matter
    "0.1.2.3",
    "10.255.255.255",
    "100.127.255.255",
    "127.255.255.254",
    "169.254.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.255.255",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.254",
    // IPv4-translated (SIIT): the embedded IPv4 decides
    "::ffff:0:7f00:1",
    "[::ffff:0:7f00:1]",
    "::ffff:0:a00:1",
    "::ffff:0:a9fe:a9fe",
    // IPv4-mapped spellings of private and metadata addresses
    "::ffff:10.0.0.1",
    "::ffff:a9fe:a9fe",
    // 6to4, refused even when it embeds a public address
    "[2002:7f00:1::]",
    "2002:7f00:1::",
    "2002:808:808::1",
    // Teredo
    "[2001::]",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    // NAT64: well-known prefix with a non-public IPv4 inside, and the local-use prefix entirely
    "64:ff9b::7f00:1",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a00:1",
    "64:ff9b:1::808:808",
    // discard-only, other IETF and documentation ranges, deprecated forms, and unallocated space
    "[100::1]",
    "100::",
    "2001:2::1",
    "2001:10::1",
    "2001:db8:ffff::1",
    "3fff::1",
    "fec0::1",
    "::7f00:1",
    "::808:808",
    "::8.8.8.8",
    "4000::1",
    "5f00::1",
    // cloud metadata
    "fd00:ec2::254",
    "[fd00:ec2::254]",
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
    "9.9.9.9",
    "[2606:4700::1111]",
    "2a00:1450:4001:80b::200e",
    "::ffff:0:808:808",
    "192.0.1.1",
    "198.20.0.1",
  ];
  for (const ip of allowed) test(`allows ${ip}`, () => expect(isBlockedAddress(ip)).toBe(false));

  test("fails closed on things that are not IP addresses", () => {
    for (const junk of ["", "example.com", "1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4:1", "12345::"]) {
      expect(isBlockedAddress(junk)).toBe(true);
    }
  });
});

describe("classifyAddress", () => {
  test("names the range that refused an address", () => {
    const ranges: [string, string][] = [
      ["127.0.0.1", "loopback"],
      ["10.0.0.1", "private"],
      ["100.64.0.1", "carrierGradeNat"],
      ["169.254.169.254", "linkLocal"],
      ["255.255.255.255", "broadcast"],
      ["::ffff:127.0.0.1", "loopback"],
      ["::ffff:0:7f00:1", "loopback"],
      ["64:ff9b::a00:1", "private"],
      ["64:ff9b:1::808:808", "nat64LocalUse"],
      ["2002:7f00:1::", "6to4"],
      ["2001::", "teredo"],
      ["100::1", "discard"],
      ["fd00:ec2::254", "uniqueLocal"],
      ["::7f00:1", "ipv4Compatible"],
      ["4000::1", "notGlobalUnicast"],
      ["not an address", "invalid"],
    ];
    for (const [ip, range] of ranges) expect(classifyAddress(ip)).toEqual({ public: false, range });
    expect(classifyAddress("8.8.8.8")).toEqual({ public: true, range: "unicast" });
  });

  test("the canonical spelling is what gets connected to", () => {
    expect(canonicalAddress("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(canonicalAddress("0:0:0:0:0:ffff:0808:0808")).toBe("8.8.8.8");
    expect(canonicalAddress("[2606:4700:0:0:0:0:0:1111]")).toBe("2606:4700::1111");
    expect(canonicalAddress("::ffff:0:7f00:1")).toBe("::ffff:0:7f00:1");
    expect(canonicalAddress("::127.0.0.1")).toBe("::7f00:1"); // IPv4-compatible, not mapped
    expect(canonicalAddress("01.2.3.4")).toBeNull();
    expect(canonicalAddress("example.com")).toBeNull();
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
      "http://[::ffff:0:7f00:1]/",
      "http://[2002:7f00:1::]/",
      "http://[2001::]/",
      "http://[100::1]/",
      "http://[64:ff9b::7f00:1]/",
      "http://[fd00:ec2::254]/latest",
      "https://[::127.0.0.1]/",
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

  test("checks every resolved address: one non-public answer refuses the URL", async () => {
    const mixed: Resolve = async () => ["8.8.8.8", "127.0.0.1"];
    const err = await assertPublicUrl("https://rebind.test/", false, mixed).catch((e: unknown) => e);
    expect((err as SafeFetchError).code).toBe("blocked_address");
    expect((err as SafeFetchError).message).toContain("rebind.test (127.0.0.1, loopback)");
    expect(await codeOf(assertPublicUrl("http://meta.test/", false, async () => ["fd00:ec2::254"]))).toBe("blocked_address");
    expect(await codeOf(assertPublicUrl("http://nat.test/", false, async () => ["::ffff:0:a9fe:a9fe"]))).toBe("blocked_address");
    // Classified only: a public answer is returned, never connected to.
    expect((await assertPublicUrl("http://public.test/", false, async () => ["2606:4700::1111", "8.8.8.8"])).address).toBe("2606:4700::1111");
  });

  test("a resolver failure, an empty answer or a non-address answer is dns_failed", async () => {
    const failing: Resolve = async () => {
      throw new Error("ENOTFOUND");
    };
    expect(await codeOf(assertPublicUrl("http://nowhere.test/", false, failing))).toBe("dns_failed");
    expect(await codeOf(assertPublicUrl("http://nowhere.test/", false, async () => []))).toBe("dns_failed");
    expect(await codeOf(assertPublicUrl("http://nowhere.test/", false, async () => ["0x7f.1"]))).toBe("dns_failed");
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

describe("safeFetch pins the connection to the checked address", () => {
  // ".test" names are reserved (RFC 6761): the system resolver cannot answer them, so a request that
  // reaches a server through one was connected to the address our resolver gave, with no lookup of fetch's own.
  const seen: { server: string; host: string | null; sni?: string }[] = [];
  let a: Server<undefined>;
  let b: Server<undefined>;
  let v6: Server<undefined>;
  let tlsServer: HttpsServer;
  let tlsPort: number;
  let dir: string;
  let ca: string;

  /** Answers `first` on the first call and `later` on every other: a rebinding DNS server. */
  function rebinding(first: string[], later: string[]) {
    const calls: string[] = [];
    const resolve: Resolve = async (host) => {
      calls.push(host);
      return calls.length === 1 ? first : later;
    };
    return { resolve, calls };
  }

  beforeAll(async () => {
    a = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) => {
        seen.push({ server: "a", host: req.headers.get("host") });
        return new Response(`a ${new URL(req.url).pathname}`);
      },
    });
    // Same port on another loopback address: where a rebound answer would lead.
    b = Bun.serve({
      port: a.port,
      hostname: "127.0.0.2",
      fetch: (req) => {
        seen.push({ server: "b", host: req.headers.get("host") });
        return new Response("b");
      },
    });
    v6 = Bun.serve({ port: 0, hostname: "::1", fetch: (req) => new Response(`v6 ${req.headers.get("host")}`) });

    // A certificate for pinned.test only (no IP in it): it verifies only if the TLS name is the hostname.
    dir = mkdtempSync(join(tmpdir(), "flowd-safe-fetch-"));
    const openssl = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=pinned.test", "-addext", "subjectAltName=DNS:pinned.test",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (openssl.exitCode !== 0) throw new Error(`openssl failed: ${openssl.stderr.toString()}`);
    ca = readFileSync(join(dir, "cert.pem"), "utf8");
    tlsServer = createHttpsServer({ cert: ca, key: readFileSync(join(dir, "key.pem"), "utf8") }, (req, res) => {
      seen.push({ server: "tls", host: req.headers.host ?? null, sni: (req.socket as { servername?: string }).servername });
      res.end(`tls ${req.url}`);
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    tlsPort = (tlsServer.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await Promise.all([a, b, v6].map((s) => s.stop(true)));
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  test("http: one lookup, and a rebound second answer does not move the connection", async () => {
    seen.length = 0;
    const dns = rebinding(["127.0.0.1"], ["127.0.0.2"]);
    const res = await safeFetch(`http://pinned.test:${a.port}/first`, {}, { allowPrivate: true, resolve: dns.resolve });
    expect(res.body).toBe("a /first");
    expect(dns.calls).toEqual(["pinned.test"]);
    expect(seen).toEqual([{ server: "a", host: `pinned.test:${a.port}` }]);
    // The next request looks up afresh and goes where that answer says: the pin is per request, from its own lookup.
    expect((await safeFetch(`http://pinned.test:${a.port}/`, {}, { allowPrivate: true, resolve: dns.resolve })).body).toBe("b");
    expect(dns.calls).toHaveLength(2);
  });

  test("https: connects to the checked address, SNI and certificate check use the hostname", async () => {
    seen.length = 0;
    const dns = rebinding(["127.0.0.1"], ["127.0.0.2"]);
    const res = await safeFetch(`https://pinned.test:${tlsPort}/secure?x=1`, {}, { allowPrivate: true, resolve: dns.resolve, ca });
    expect(res.status).toBe(200);
    expect(res.body).toBe("tls /secure?x=1");
    expect(dns.calls).toEqual(["pinned.test"]);
    expect(seen).toEqual([{ server: "tls", host: `pinned.test:${tlsPort}`, sni: "pinned.test" }]);
  });

  test("https: the certificate is still verified", async () => {
    const loopback: Resolve = async () => ["127.0.0.1"];
    const failure = (url: string, ca?: string) =>
      safeFetch(url, {}, { allowPrivate: true, resolve: loopback, ca }).then(
        () => undefined,
        (e: unknown) => e as SafeFetchError,
      );
    // Right address, wrong name for the certificate.
    const wrongName = await failure(`https://other.test:${tlsPort}/`, ca);
    expect(wrongName?.code).toBe("network");
    expect(wrongName?.message).toContain("ALTNAME");
    // Right name, but without `ca` the self-signed certificate is not trusted: serverName keeps the system store.
    const untrusted = await failure(`https://pinned.test:${tlsPort}/`);
    expect(untrusted?.code).toBe("network");
    expect(untrusted?.message).toContain("self signed");
  });

  test("IPv6 answers are pinned too", async () => {
    const res = await safeFetch(`http://six.test:${v6.port}/`, {}, { allowPrivate: true, resolve: async () => ["::1"] });
    expect(res.body).toBe(`v6 six.test:${v6.port}`);
  });

  test("a refused connection moves on to the next checked address", async () => {
    seen.length = 0;
    // Nothing listens on 127.0.0.3 (a and b hold this port on .1 and .2 only).
    const res = await safeFetch(`http://dual.test:${a.port}/`, {}, { allowPrivate: true, resolve: async () => ["127.0.0.3", "127.0.0.1"] });
    expect(res.body).toBe("a /");
    expect(seen.map((s) => s.server)).toEqual(["a"]);
  });

  test("without allowPrivate a name resolving to loopback is refused before any connection", async () => {
    seen.length = 0;
    const dns = rebinding(["127.0.0.1"], ["127.0.0.1"]);
    expect(await codeOf(safeFetch(`http://pinned.test:${a.port}/`, {}, { allowPrivate: false, resolve: dns.resolve }))).toBe("blocked_address");
    expect(dns.calls).toHaveLength(1);
    expect(seen).toEqual([]);
  });
});
