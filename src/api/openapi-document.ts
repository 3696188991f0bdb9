import type { Elysia } from "elysia";
import { toOpenAPISchema } from "@elysiajs/openapi";
import { ERROR_MEANINGS } from "./models/errors";
import { socketClientMessages, socketServerMessages } from "./models/events";

/*
 * The OpenAPI document, from the routes' own schemas (the Elysia plugin's generator), finished so
 * that client generators can use it: named schemas (`$id`) become components referenced with
 * `#/components/schemas/...` (the recursive job node included), request bodies carry their schemas,
 * query numbers read as numbers, and every response has a description that says something.
 */

type Json = Record<string, unknown>;
type Schema = Json;
interface RouteLike {
  method: string;
  path: string;
  hooks?: { body?: unknown; detail?: { hide?: boolean } };
}

const COMPONENT = "#/components/schemas/";

/** Moves every `$id` schema into `components` (first definition wins) and points refs at it. */
function lift(node: unknown, components: Record<string, Schema>): unknown {
  if (Array.isArray(node)) return node.map((n) => lift(n, components));
  if (node === null || typeof node !== "object") return node;
  const { $id, ...rest } = node as Json;
  const out: Json = {};
  for (const [k, v] of Object.entries(rest)) {
    // A TypeBox record is a pattern property matching every key: the same as additionalProperties.
    if (k === "patternProperties" && v && typeof v === "object" && Object.keys(v).length === 1 && "^(.*)$" in v)
      out.additionalProperties = lift((v as Json)["^(.*)$"], components);
    else if (k === "$ref" && typeof v === "string" && !v.startsWith("#")) out.$ref = COMPONENT + v;
    else out[k] = lift(v, components);
  }
  if (typeof $id !== "string") return out;
  components[$id] ??= out;
  return { $ref: COMPONENT + $id };
}

/**
 * A query number (models/query.ts) validates as a string whose format holds its bounds; a client
 * sends a number, so the document says so.
 */
function queryNumber(schema: Schema): Schema {
  const branches = schema.anyOf as Schema[] | undefined;
  const text = branches?.find((b) => typeof b.format === "string" && (b.format as string).startsWith("flowd-"));
  if (!text) return schema;
  const type = (text.format as string).startsWith("flowd-integer") ? "integer" : "number";
  const { anyOf: _, ...rest } = schema;
  return { ...rest, type };
}

const plainSchema = (s: unknown): Schema => JSON.parse(JSON.stringify(s)) as Schema;
const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");

function describeResponses(operation: Json) {
  const responses = (operation.responses ?? {}) as Record<string, Json>;
  for (const [status, response] of Object.entries(responses)) {
    const generic = typeof response.description !== "string" || response.description.startsWith("Response for status");
    if (!generic) continue;
    const meaning = ERROR_MEANINGS[Number(status) as keyof typeof ERROR_MEANINGS];
    response.description = meaning ?? (status === "201" ? "Created" : "OK");
  }
  operation.responses = responses;
}

const socketPath = {
  get: {
    tags: ["events"],
    operationId: "openSocket",
    summary: "Live events over a WebSocket (upgrade); messages are the Socket* schemas",
    description:
      "Client frames: SocketSubscribe, SocketUnsubscribe, SocketPing (JSON text). Server frames: SocketEvent, SocketSubscribed, " +
      "SocketUnsubscribed, SocketPong, SocketError. With `after`, stored events with a larger seq come first, then live ones, in seq order.",
    parameters: [
      { name: "token", in: "query", required: false, schema: { type: "string" }, description: "The API token, for clients that cannot set headers" },
    ],
    "x-client-messages": { $ref: `${COMPONENT}SocketClientMessage` },
    responses: {
      "101": {
        description: "Switching to the WebSocket protocol; the server then sends SocketServerMessage frames",
        content: { "application/json": { schema: { $ref: `${COMPONENT}SocketServerMessage` } } },
      },
      "401": { description: ERROR_MEANINGS[401], content: { "application/json": { schema: { $ref: `${COMPONENT}Error` } } } },
      "429": { description: "Too many sockets for this user (too_many_sockets)", content: { "application/json": { schema: { $ref: `${COMPONENT}Error` } } } },
    },
  },
};

function socketComponents(components: Record<string, Schema>) {
  const messages = { ...socketClientMessages, ...socketServerMessages };
  for (const [name, schema] of Object.entries(messages)) components[name] = lift(plainSchema(schema), components) as Schema;
  const oneOf = (names: string[]) => ({ oneOf: names.map((n) => ({ $ref: COMPONENT + n })) });
  components.SocketClientMessage = { ...oneOf(Object.keys(socketClientMessages)), description: "a frame a client sends on /v1/ws" };
  components.SocketServerMessage = { ...oneOf(Object.keys(socketServerMessages)), description: "a frame the server sends on /v1/ws" };
}

/** The finished document of `app`, whose routes are all registered by now. */
export function buildDocument(app: Elysia, base: Json): Json {
  const generated = toOpenAPISchema(app as never, undefined, undefined, undefined, "3.1.0") as unknown as { paths: Record<string, Record<string, Json>> };
  const paths = generated.paths;
  const routes = (app as unknown as { getGlobalRoutes(): RouteLike[] }).getGlobalRoutes();
  for (const route of routes) {
    const operation = paths[openApiPath(route.path)]?.[route.method.toLowerCase()];
    if (!operation || !route.hooks?.body) continue;
    // The body plugin parses JSON itself, so the generator cannot tell the media type: it is JSON.
    operation.requestBody = { required: true, content: { "application/json": { schema: plainSchema(route.hooks.body) } } };
  }
  for (const item of Object.values(paths))
    for (const operation of Object.values(item)) {
      for (const p of (operation.parameters ?? []) as Json[]) p.schema = queryNumber(p.schema as Schema);
      describeResponses(operation);
    }
  const components: Record<string, Schema> = {};
  const liftedPaths = lift({ ...paths, "/v1/ws": socketPath }, components) as Json;
  socketComponents(components);
  const baseComponents = (base.components ?? {}) as Json;
  return {
    openapi: "3.1.0",
    ...base,
    paths: liftedPaths,
    components: { ...baseComponents, schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))) },
  };
}
