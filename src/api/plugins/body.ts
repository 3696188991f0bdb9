import { Elysia } from "elysia";
import { InvalidInput, TooLarge } from "../../errors";

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
 * Reads JSON bodies itself so that every refusal has SPEC's shape: a declared or streamed body
 * over the limit is 413 before it is parsed, malformed JSON is 400, and strings holding NUL
 * (which Postgres cannot store) are 400 instead of failing deep in a query.
 */
export const jsonBodyPlugin = (limit: number) =>
  new Elysia({ name: "json-body" })
    .onRequest(({ request }) => {
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > limit) throw tooLarge(length, limit);
    })
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      const text = await readCapped(request, limit);
      if (text.trim() === "") return undefined;
      if (!JSON_TYPE.test(contentType ?? "")) {
        nonJsonBodies.set(request, contentType || "nothing");
        return {};
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
      if (text.includes("\\u0000")) throw new InvalidInput("Strings may not contain the NUL character (\\u0000).");
      return value;
    });

const tooLarge = (bytes: number | string, limit: number) =>
  new TooLarge(`The request body is ${bytes} bytes; the limit is ${limit} bytes (FLOWD_BODY_LIMIT).`, { limit });

async function readCapped(request: Request, limit: number): Promise<string> {
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
