import { Elysia } from "elysia";
import { AppError, InvalidInput, TooLarge } from "../../errors";
import { UNSTORABLE, describeUnstorable, findUnstorable } from "../../unstorable";

/** JSON media types, compared as HTTP says: case-insensitively, `+json` suffixes included. */
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\s*(;|$)/i;

/** Requests that carried a body in another media type, and which one, for the error plugin. */
const nonJsonBodies = new WeakMap<Request, string>();

/**
 * The media type of a non-JSON body this request carried, if any. Routes without a body ignore
 * it; a route whose body fails validation says what to send instead of listing form fields.
 */
export const nonJsonBodyType = (request: Request) => nonJsonBodies.get(request);

/**
 * The request head flowd accepts: Bun's own default cap. Bun refuses a larger head itself, with an
 * empty 431, before any of this code runs; started with `--max-http-header-size` above this (the
 * build passes it through `--compile-exec-argv`; `BUN_OPTIONS` works too), the refusal is this
 * plugin's, in SPEC's shape, for heads up to Bun's raised cap.
 */
export const HEAD_LIMIT = 16 * 1024;

/** Roughly the bytes of the request line and header lines, as Bun counts them for its cap. */
function headBytes(request: Request): number {
  const url = request.url;
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  let bytes = request.method.length + (pathStart < 0 ? 1 : url.length - pathStart) + " HTTP/1.1\r\n\r\n".length + 1;
  request.headers.forEach((value, name) => {
    bytes += name.length + value.length + 4;
  });
  return bytes;
}

/**
 * A query string is percent-decoded before a route sees it, and `%00` becomes a NUL that Postgres
 * refuses in any text parameter. (Unpaired surrogates cannot arrive this way: Elysia's decoder
 * keeps an invalid UTF-8 sequence as its raw `%XX` text.)
 */
function checkQuery(url: string) {
  const start = url.indexOf("?");
  if (start < 0) return;
  const query = url.slice(start);
  if (/%00/i.test(query)) throw new InvalidInput("Query parameters may not contain the NUL character (%00).");
  const repeated = repeatedParameter(query);
  if (repeated !== undefined)
    throw new InvalidInput(`The query parameter '${repeated}' is given more than once; give each parameter once.`, [
      { path: `/${repeated}`, message: "given more than once" },
    ]);
}

/**
 * The first parameter name the query gives twice (compared percent-decoded, as routes read them).
 * One rule for every route: no parameter is a list, and Elysia would keep the last value without a
 * word, hiding a client's mistake (`?status=failed&status=completed` listed completed ones only).
 */
function repeatedParameter(query: string): string | undefined {
  if (!query.includes("&")) return undefined;
  const seen = new Set<string>();
  for (const name of new URLSearchParams(query).keys()) {
    if (seen.has(name)) return name.length > 64 ? `${name.slice(0, 64)}…` : name;
    seen.add(name);
  }
  return undefined;
}

/**
 * Reads JSON bodies itself so that every refusal has SPEC's shape: a declared or streamed body
 * over the limit is 413 before it is parsed, malformed JSON is 400, and strings or numbers that
 * Postgres cannot keep (NUL, unpaired surrogates, numbers beyond ±1.8e308) are 400 naming where,
 * instead of failing deep in a query. It also refuses, before routing, what the other parts of a
 * request carry that flowd cannot keep or would misread: an oversized head (431), and a NUL or a
 * parameter given twice in the query (400). `parsed` hears of every body it returns (admission
 * counts a create's jobs there).
 */
export const jsonBodyPlugin = (limit: number, parsed?: (request: Request, body: unknown, bytes: number) => void) =>
  new Elysia({ name: "json-body" })
    .onRequest(({ request }) => {
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > limit) throw tooLarge(length, limit);
      const head = headBytes(request);
      if (head > HEAD_LIMIT)
        throw new AppError(431, "headers_too_large", `The request line and headers are ${head} bytes; the limit is ${HEAD_LIMIT} bytes.`, { limit: HEAD_LIMIT });
      checkQuery(request.url);
    })
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      const text = await readCapped(request, limit);
      if (text.trim() === "") return undefined;
      if (!JSON_TYPE.test(contentType ?? "")) {
        nonJsonBodies.set(request, contentType || "nothing");
        // null, not {}: no body schema accepts it, so every route that takes a body refuses this one
        // (one whose fields are all optional, like a callback's `{ result? }`, accepted {} as empty),
        // while routes without a body never look at it.
        return null;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new InvalidInput(
          "The request body is not valid JSON; send a JSON object with 'content-type: application/json'.",
          undefined,
          "invalid_json",
        );
      }
      const unstorable = mayHoldUnstorable(text) ? findUnstorable(value) : undefined;
      if (unstorable) throw new InvalidInput(describeUnstorable(unstorable), [{ path: unstorable.path, message: UNSTORABLE[unstorable.problem] }]);
      // The text's length in UTF-16 units: at most its bytes, and what the parsed value grew from.
      parsed?.(request, value, text.length);
      return value;
    });

/**
 * Whether the text can hold what findUnstorable looks for: the body was decoded from UTF-8 and JSON
 * allows no raw control characters, so a NUL or a lone surrogate only arrives as a `\u` escape, and
 * a number past ±1.8e308 needs a three-digit exponent or hundreds of digits. Most bodies have none
 * of these, and skip the walk over every string (a tenth of a create's CPU on a 1,000-job flow).
 */
const MAYBE_UNSTORABLE = /\\u|[eE][+]?\d{3}|\d{300}/;
const mayHoldUnstorable = (text: string) => MAYBE_UNSTORABLE.test(text);

const tooLarge = (bytes: number | string, limit: number) =>
  new TooLarge(`The request body is ${bytes} bytes; the limit is ${limit} bytes (FLOWD_BODY_LIMIT).`, { limit });

async function readCapped(request: Request, limit: number): Promise<string> {
  // A declared length was held to the limit on arrival, and Bun reads exactly that many bytes: its
  // native read is enough (the stream reader below cost 6% of the API's CPU on small creates).
  const declared = request.headers.get("content-length");
  if (declared !== null) return Number(declared) === 0 ? "" : request.text();
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(`more than ${limit}`, limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
