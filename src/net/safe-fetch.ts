import { promises as dns } from "node:dns";
import { canonicalAddress, classifyAddress } from "./public-address";

export { classifyAddress, isBlockedAddress, type AddressVerdict } from "./public-address";

/**
 * SSRF-guarded fetch for `http` jobs and webhook deliveries: only http(s), never to an address that is not
 * globally routable unicast (unless FLOWD_ALLOW_PRIVATE_URLS), no redirects, bounded time and size.
 * The host is resolved once, every answer is checked, and the connection goes to a checked address (the
 * URL's host replaced by it; Host header and TLS name stay the hostname), so DNS rebinding between the
 * check and the connect has nothing to act on.
 */

/** Host name → its addresses. The default asks the system resolver (getaddrinfo, as fetch would). */
export type Resolve = (host: string) => Promise<string[]>;

export interface SafeFetchOptions {
  /** When true, skip the address checks (local testing); the connection is still pinned. */
  allowPrivate: boolean;
  /** Whole request including the body read. Default 15000. */
  timeoutMs?: number;
  /** Reading more aborts with code "response_too_large". Default 1 MiB. */
  maxResponseBytes?: number;
  /** Caller's cancellation, combined with the timeout. */
  signal?: AbortSignal;
  /** Replaces the system resolver (tests, split-horizon setups). Called once per request. */
  resolve?: Resolve;
  /** PEM certificate authorities to trust for https instead of the system's (private PKI, tests). */
  ca?: string;
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

function blocked(host: string, address: string, range: string): SafeFetchError {
  return new SafeFetchError(
    "blocked_address",
    `Refusing to connect to ${host} (${address}, ${range}): not a public address (private, loopback or reserved). ` +
      "Set FLOWD_ALLOW_PRIVATE_URLS=true to allow it (local testing only).",
  );
}

const systemResolve: Resolve = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((r) => r.address);

async function resolveHost(host: string, resolve: Resolve): Promise<string[]> {
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (err) {
    throw new SafeFetchError("dns_failed", `Could not resolve ${host}: ${messageOf(err)}`);
  }
  if (addresses.length === 0) throw new SafeFetchError("dns_failed", `${host} resolved to no addresses.`);
  return addresses;
}

/** The URL's host without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

const isIpLiteral = (host: string) => canonicalAddress(host) !== null;

/** `localhost` and its subdomains are loopback by definition (RFC 6761), whatever DNS says. */
function refuseLoopbackName(host: string) {
  const bareName = host.replace(/\.+$/, "").toLowerCase();
  if (bareName === "localhost" || bareName.endsWith(".localhost")) throw blocked(host, "loopback name", "loopback");
}

/**
 * Resolves the URL's host once (an IP literal is not resolved) and checks every answer. Returns the
 * addresses to connect to, each in the spelling that was checked.
 */
async function checkedAddresses(url: URL, allowPrivate: boolean, resolve: Resolve): Promise<string[]> {
  const host = bareHost(url);
  if (!allowPrivate) refuseLoopbackName(host);
  const answers = isIpLiteral(host) ? [host] : await resolveHost(host, resolve);
  return answers.map((answer) => {
    const address = canonicalAddress(answer);
    if (address === null) throw new SafeFetchError("dns_failed", `${host} resolved to '${answer}', which is not an IP address.`);
    // Any blocked answer refuses: a mixed answer set is a classic DNS-rebinding setup.
    const verdict = classifyAddress(address);
    if (!allowPrivate && !verdict.public) throw blocked(host, answer, verdict.range);
    return address;
  });
}

/**
 * Checks that the URL is http(s) and that every address its host resolves to is public. Returns the
 * address to connect to; with allowPrivate nothing is resolved and `address` is the bare host.
 */
export async function assertPublicUrl(url: string, allowPrivate: boolean, resolve: Resolve = systemResolve): Promise<{ url: URL; address: string }> {
  const parsed = parseHttpUrl(url);
  if (allowPrivate) return { url: parsed, address: bareHost(parsed) };
  const addresses = await checkedAddresses(parsed, false, resolve);
  return { url: parsed, address: addresses[0]! };
}

/**
 * The part of assertPublicUrl that needs no DNS: the scheme, a `localhost` name, and an IP literal's
 * range (the URL parser has already turned `0x7f000001` and the like into dotted form). For checks at
 * creation, which must stay fast (a 1,000-job flow cannot wait on 1,000 lookups) and cannot know
 * what a name will resolve to when the job runs; a host name passes here and is checked after
 * resolution on every request, as safeFetch always does.
 */
export function assertPublicUrlWithoutDns(url: string, allowPrivate: boolean): void {
  const parsed = parseHttpUrl(url);
  if (allowPrivate) return;
  const host = bareHost(parsed);
  refuseLoopbackName(host);
  const address = canonicalAddress(host);
  if (address === null) return;
  const verdict = classifyAddress(address);
  if (!verdict.public) throw blocked(host, host, verdict.range);
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

/**
 * The request for one checked address: the URL's host becomes the address, so fetch does no DNS of its
 * own; Host carries the original host, and for https `serverName` keeps SNI and the certificate check
 * on the hostname (Bun verifies against serverName when it is set).
 */
function pinnedRequest(url: URL, address: string, opts: SafeFetchOptions, headers: Record<string, string> = {}) {
  const target = new URL(url.href);
  target.hostname = address.includes(":") ? `[${address}]` : address;
  const h = new Headers(headers);
  h.set("host", url.host);
  const host = bareHost(url);
  const serverName = url.protocol === "https:" && !isIpLiteral(host) ? host.replace(/\.+$/, "") : undefined;
  const tls = serverName !== undefined || opts.ca !== undefined ? { serverName, ca: opts.ca } : undefined;
  return { target: target.href, headers: h, tls };
}

// Failures before a single byte was sent: the next checked address may be tried (a name with both an
// IPv6 and an IPv4 answer whose server listens on one only).
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"]);

async function fetchPinned(
  url: URL,
  addresses: string[],
  init: { method?: string; headers?: Record<string, string>; body?: string },
  opts: SafeFetchOptions,
  signal: AbortSignal,
): Promise<Response> {
  for (let i = 0; ; i++) {
    const { target, headers, tls } = pinnedRequest(url, addresses[i]!, opts, init.headers);
    try {
      return await fetch(target, { method: init.method ?? "GET", headers, body: init.body, redirect: "manual", signal, tls });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (i + 1 >= addresses.length || signal.aborted || typeof code !== "string" || !CONNECT_FAILURES.has(code)) throw err;
    }
  }
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
    const parsed = parseHttpUrl(url);
    const addresses = await abortable(checkedAddresses(parsed, opts.allowPrivate, opts.resolve ?? systemResolve), signal);
    const res = await fetchPinned(parsed, addresses, init, opts, signal);
    const body = await readCapped(res, opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    return { status: res.status, headers: res.headers, body, durationMs: Math.round(performance.now() - started) };
  } catch (err) {
    throw classify(err, timeout, timeoutMs, opts.signal);
  }
}
