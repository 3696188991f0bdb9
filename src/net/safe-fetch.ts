import { promises as dns } from "node:dns";

/**
 * SSRF-guarded fetch for `http` jobs and webhook deliveries: only http(s), never to private, loopback,
 * link-local or reserved addresses (unless FLOWD_ALLOW_PRIVATE_URLS), no redirects, bounded time and size.
 */

export interface SafeFetchOptions {
  /** When true, skip the address checks (local testing). */
  allowPrivate: boolean;
  /** Whole request including the body read. Default 15000. */
  timeoutMs?: number;
  /** Reading more aborts with code "response_too_large". Default 1 MiB. */
  maxResponseBytes?: number;
  /** Caller's cancellation, combined with the timeout. */
  signal?: AbortSignal;
}

export interface SafeResponse {
  status: number;
  headers: Headers;
  /** Body as text, at most maxResponseBytes. */
  body: string;
  durationMs: number;
}

export type SafeFetchErrorCode =
  | "invalid_url"
  | "blocked_address"
  | "dns_failed"
  | "timeout"
  | "response_too_large"
  | "network"
  | "aborted";

export class SafeFetchError extends Error {
  override name = "SafeFetchError";
  constructor(
    readonly code: SafeFetchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

// ---- Address classification -------------------------------------------------------------------

/** Dotted-quad IPv4 as an unsigned 32-bit number; null if not one (leading zeros refused: octal ambiguity). */
function parseIPv4(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

function parseGroups(part: string): number[] | null {
  const out: number[] = [];
  for (const piece of part.split(":")) {
    if (piece.includes(".")) {
      const v4 = parseIPv4(piece);
      if (v4 === null) return null;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9a-f]{1,4}$/i.test(piece)) {
      out.push(parseInt(piece, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** IPv6 as eight 16-bit groups; handles `::`, trailing dotted IPv4, brackets and a zone id. */
function parseIPv6(ip: string): number[] | null {
  const addr = ip.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  // A dotted IPv4 part may only be the last piece.
  if (!addr.includes(":") || /\.[^:]*:/.test(addr)) return null;
  const halves = addr.split("::");
  if (halves.length > 2) return null;
  const [head = "", tail = ""] = halves;
  const h = head === "" ? [] : parseGroups(head);
  const t = tail === "" ? [] : parseGroups(tail);
  if (!h || !t) return null;
  if (halves.length === 1) return h.length === 8 ? h : null;
  const missing = 8 - h.length - t.length;
  return missing >= 1 ? [...h, ...Array<number>(missing).fill(0), ...t] : null;
}

const BLOCKED_V4: ReadonlyArray<readonly [number, number]> = (
  [
    ["0.0.0.0", 8], // "this" network
    ["10.0.0.0", 8],
    ["100.64.0.0", 10], // CGNAT
    ["127.0.0.0", 8],
    ["169.254.0.0", 16], // link-local, cloud metadata
    ["172.16.0.0", 12],
    ["192.0.0.0", 24],
    ["192.0.2.0", 24], // TEST-NET-1
    ["192.168.0.0", 16],
    ["198.18.0.0", 15], // benchmarking
    ["198.51.100.0", 24], // TEST-NET-2
    ["203.0.113.0", 24], // TEST-NET-3
    ["224.0.0.0", 4], // multicast
    ["240.0.0.0", 4], // reserved, broadcast
  ] as const
).map(([base, bits]) => [parseIPv4(base)!, bits] as const);

function isBlockedV4(n: number): boolean {
  return BLOCKED_V4.some(([base, bits]) => n >>> (32 - bits) === base >>> (32 - bits));
}

function isBlockedV6(g: number[]): boolean {
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const embedded = (g[6]! * 0x10000 + g[7]!) >>> 0;
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, which also covers :: and ::1).
  if (zero(0, 5) && (g[5] === 0xffff || g[5] === 0)) return isBlockedV4(embedded);
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return isBlockedV4(embedded); // NAT64
  const first = g[0]!;
  return (
    (first & 0xfe00) === 0xfc00 || // fc00::/7 unique local
    (first & 0xffc0) === 0xfe80 || // fe80::/10 link-local
    (first & 0xff00) === 0xff00 || // ff00::/8 multicast
    (first === 0x2001 && g[1] === 0x0db8) // 2001:db8::/32 documentation
  );
}

/** True for private/loopback/link-local/reserved addresses. Anything unparseable is blocked (fail closed). */
export function isBlockedAddress(ip: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return isBlockedV4(v4);
  const v6 = parseIPv6(ip);
  return v6 === null || isBlockedV6(v6);
}

// ---- URL check --------------------------------------------------------------------------------

function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SafeFetchError("invalid_url", `'${raw}' is not a valid URL.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SafeFetchError("invalid_url", `URL scheme '${url.protocol}' is not allowed; use http: or https:.`);
  }
  return url;
}

function blocked(host: string, address: string): SafeFetchError {
  return new SafeFetchError(
    "blocked_address",
    `Refusing to connect to ${host} (${address}): private, loopback or reserved address. ` +
      "Set FLOWD_ALLOW_PRIVATE_URLS=true to allow it (local testing only).",
  );
}

async function resolveHost(host: string): Promise<string[]> {
  let results: { address: string }[];
  try {
    results = await dns.lookup(host, { all: true, verbatim: true });
  } catch (err) {
    throw new SafeFetchError("dns_failed", `Could not resolve ${host}: ${messageOf(err)}`);
  }
  if (results.length === 0) throw new SafeFetchError("dns_failed", `${host} resolved to no addresses.`);
  return results.map((r) => r.address);
}

/**
 * Checks that the URL is http(s) and that every address its host resolves to is public. Returns the
 * address to connect to; with allowPrivate nothing is resolved and `address` is the bare host.
 */
export async function assertPublicUrl(url: string, allowPrivate: boolean): Promise<{ url: URL; address: string }> {
  const parsed = parseHttpUrl(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  if (allowPrivate) return { url: parsed, address: host };
  const bareName = host.replace(/\.+$/, "");
  if (bareName === "localhost" || bareName.endsWith(".localhost")) throw blocked(host, "loopback name");
  const isLiteral = parseIPv4(host) !== null || parseIPv6(host) !== null;
  const addresses = isLiteral ? [host] : await resolveHost(host);
  // Any blocked answer refuses: a mixed answer set is a classic DNS-rebinding setup.
  for (const address of addresses) if (isBlockedAddress(address)) throw blocked(host, address);
  return { url: parsed, address: addresses[0]! };
}

// ---- Fetch ------------------------------------------------------------------------------------

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Lets the abort signal interrupt a step that does not take one (DNS lookup). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Target URL and headers. Plain http is pinned to the checked address so DNS cannot change in between. */
function pinnedRequest(url: URL, address: string, pin: boolean, headers: Record<string, string> = {}) {
  const h = new Headers(headers);
  if (!pin || url.protocol !== "http:") {
    // https keeps the hostname for SNI and certificate checks, so a second DNS lookup happens in fetch:
    // a rebinding window remains between our check and the connect.
    return { target: url.href, headers: h };
  }
  const target = new URL(url.href);
  target.hostname = address.includes(":") ? `[${address}]` : address;
  h.set("host", url.host);
  return { target: target.href, headers: h };
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let total = 0;
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined); // stop the download, not just our reading
      throw new SafeFetchError("response_too_large", `Response body exceeded ${maxBytes} bytes; stopped reading.`);
    }
    text += decoder.decode(value, { stream: true });
  }
}

function classify(err: unknown, timeout: AbortSignal, timeoutMs: number, caller?: AbortSignal): SafeFetchError {
  if (err instanceof SafeFetchError) return err;
  // Check the caller first: its cancellation is deliberate, whatever error the abort surfaced as.
  if (caller?.aborted) return new SafeFetchError("aborted", "The request was cancelled.");
  if (timeout.aborted) return new SafeFetchError("timeout", `No complete response within ${timeoutMs} ms.`);
  return new SafeFetchError("network", `Request failed: ${messageOf(err)}`);
}

/** Fetches a URL after the SSRF checks; 3xx responses are returned, never followed. Throws SafeFetchError. */
export async function safeFetch(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string },
  opts: SafeFetchOptions,
): Promise<SafeResponse> {
  const started = performance.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  try {
    const checked = await abortable(assertPublicUrl(url, opts.allowPrivate), signal);
    const { target, headers } = pinnedRequest(checked.url, checked.address, !opts.allowPrivate, init.headers);
    const res = await fetch(target, { method: init.method ?? "GET", headers, body: init.body, redirect: "manual", signal });
    const body = await readCapped(res, opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    return { status: res.status, headers: res.headers, body, durationMs: Math.round(performance.now() - started) };
  } catch (err) {
    throw classify(err, timeout, timeoutMs, opts.signal);
  }
}
