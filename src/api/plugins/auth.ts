import { Elysia } from "elysia";
import { Unauthorized } from "../../errors";
import type { Authenticate, AuthUser } from "../../services/tokens";

/** Reads the token from `Authorization: Bearer …`, or from `?token=` where headers cannot be set (browsers' WebSocket). */
export function bearerToken(request: Request): string | null {
  const header = request.headers.get("authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1] ?? null;
  }
  return new URL(request.url).searchParams.get("token");
}

/** Resolves `user` for every route after it; refuses with 401 before any handler runs. */
export const authPlugin = (authenticate: Authenticate) =>
  new Elysia({ name: "auth" }).resolve({ as: "scoped" }, async ({ request }): Promise<{ user: AuthUser }> => {
    const token = bearerToken(request);
    if (!token) throw new Unauthorized();
    const user = await authenticate(token);
    if (!user) throw new Unauthorized("The API token is unknown or revoked; create one with 'flowd token create --user NAME'.");
    return { user };
  });
