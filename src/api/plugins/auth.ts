import { Elysia } from "elysia";
import { Unauthorized } from "../../errors";
import type { Authenticate, AuthUser } from "../../services/tokens";

/**
 * Reads the token from `Authorization: Bearer …`; with `allowQuery`, also from `?token=`, for the
 * socket route only, since browsers cannot set headers on a WebSocket.
 */
export function bearerToken(request: Request, allowQuery = false): string | null {
  const header = request.headers.get("authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1] ?? null;
  }
  return allowQuery ? new URL(request.url).searchParams.get("token") : null;
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
