import { Elysia } from "elysia";
import { Unauthorized } from "../../errors";
import type { Authenticate, AuthUser } from "../../services/tokens";

/**
 * Reads the token from `Authorization: Bearer …`; with `allowQuery`, also from `?token=`, for the
 * socket route only, since browsers cannot set headers on a WebSocket.
 */
/** The subprotocol a socket selects, and the prefix of the one that carries its token. */
export const SOCKET_PROTOCOL = "flowd";
export const SOCKET_TOKEN_PROTOCOL = "flowd.bearer.";

/**
 * A socket's token from `Sec-WebSocket-Protocol` (`flowd, flowd.bearer.<token>`): the way a browser
 * page sends it, since it cannot set headers on a WebSocket and a URL lands in logs and history.
 */
export function protocolToken(request: Request): string | null {
  const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const entry = offered.find((p) => p.startsWith(SOCKET_TOKEN_PROTOCOL));
  return entry ? entry.slice(SOCKET_TOKEN_PROTOCOL.length) || null : null;
}

export function bearerToken(request: Request, allowQuery = false): string | null {
  const header = request.headers.get("authorization");
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (match) return match[1] ?? null;
  // A proxy may add an Authorization header of its own (Basic…); the socket's ?token= still counts.
  if (allowQuery) return new URL(request.url).searchParams.get("token");
  return null;
}

/**
 * Derives `user` for every route after it. A derive runs before input validation, so a request
 * without a valid token is 401 whatever its body says.
 */
export const authPlugin = (authenticate: Authenticate) =>
  new Elysia({ name: "auth" }).derive({ as: "scoped" }, async ({ request }): Promise<{ user: AuthUser }> => {
    const token = bearerToken(request);
    if (!token) throw new Unauthorized();
    const user = await authenticate(token);
    if (!user) throw new Unauthorized("The API token is unknown or revoked; create one with 'flowd token create --user NAME'.");
    return { user };
  });
