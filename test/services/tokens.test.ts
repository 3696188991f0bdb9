import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bearerToken } from "../../src/api/plugins/auth";
import { createAuthenticator, createToken, hashToken, TOKEN_PREFIX } from "../../src/services/tokens";
import { createTestDatabase } from "../helpers/db";
import { runFlowd } from "../helpers/process";
import { REDIS_URL } from "../helpers/services";
import { startStack, type Stack } from "../helpers/stack";

describe("tokens in the database", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** Every row of users and api_tokens, each as its JSON text. */
  const storedText = async () => {
    const rows = await db.database.sql<{ row: string }[]>`
      select row_to_json(u)::text as row from users u
      union all
      select row_to_json(t)::text as row from api_tokens t`;
    return rows.map((r) => r.row);
  };

  test("createToken returns a flowd_ token; only its SHA-256 and a short prefix are stored", async () => {
    const { token, userId, prefix } = await createToken(db.database.db, "alice");
    expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(TOKEN_PREFIX).toBe("flowd_");
    expect(token.length).toBeGreaterThan(TOKEN_PREFIX.length + 30);
    expect(token.startsWith(prefix)).toBe(true);
    expect(prefix.length).toBeLessThan(token.length / 2);

    const rows = await db.database.sql<{ user_id: string; token_hash: string; prefix: string; revoked_at: Date | null }[]>`
      select user_id, token_hash, prefix, revoked_at from api_tokens`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.user_id).toBe(userId);
    expect(rows[0]!.token_hash).toBe(hashToken(token));
    expect(rows[0]!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]!.prefix).toBe(prefix);
    expect(rows[0]!.revoked_at).toBeNull();

    // No column of any row holds the token or its secret part.
    const secret = token.slice(prefix.length);
    for (const text of await storedText()) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice(0, 16));
    }
  });

  test("hashToken is the SHA-256 hex of the token", () => {
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("a second token for the same user reuses the user", async () => {
    const first = await createToken(db.database.db, "bob");
    const second = await createToken(db.database.db, "bob");
    expect(second.userId).toBe(first.userId);
    expect(second.token).not.toBe(first.token);
    const users = await db.database.sql<{ n: number }[]>`select count(*)::int as n from users where name = 'bob'`;
    expect(users[0]!.n).toBe(1);
    const tokens = await db.database.sql<{ n: number }[]>`select count(*)::int as n from api_tokens where user_id = ${first.userId}`;
    expect(tokens[0]!.n).toBe(2);
  });

  test("the authenticator resolves a token to its user and refuses unknown tokens", async () => {
    const { token, userId } = await createToken(db.database.db, "carol");
    const authenticate = createAuthenticator(db.database.db);
    expect(await authenticate(token)).toEqual({ userId, userName: "carol" });
    expect(await authenticate("flowd_unknown")).toBeNull();
    expect(await authenticate(token + "x")).toBeNull();
    expect(await authenticate("")).toBeNull();
  });

  test("a revoked token no longer authenticates", async () => {
    const { token, userId } = await createToken(db.database.db, "dave");
    expect(await createAuthenticator(db.database.db)(token)).toEqual({ userId, userName: "dave" });
    await db.database.sql`update api_tokens set revoked_at = now() where token_hash = ${hashToken(token)}`;
    // A new authenticator: the old one may answer from its cache for a few seconds.
    expect(await createAuthenticator(db.database.db)(token)).toBeNull();
  });

  test("revoking one token leaves the user's other tokens working", async () => {
    const a = await createToken(db.database.db, "erin");
    const b = await createToken(db.database.db, "erin");
    await db.database.sql`update api_tokens set revoked_at = now() where token_hash = ${hashToken(a.token)}`;
    const authenticate = createAuthenticator(db.database.db);
    expect(await authenticate(a.token)).toBeNull();
    expect(await authenticate(b.token)).toEqual({ userId: b.userId, userName: "erin" });
  });

  test("`flowd token create --user bob` prints a token as the last line of stdout, and it authenticates", async () => {
    const r = await runFlowd(["token", "create", "--user", "bob"], { DATABASE_URL: db.url, REDIS_URL, LOG_LEVEL: "info" });
    if (r.code !== 0) throw new Error(`token create exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.split("\n").filter((l) => l !== "");
    const token = lines.at(-1)!;
    expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(token).not.toContain(" ");
    // The token is printed once: not in the logs nor on stderr.
    expect(lines.slice(0, -1).join("\n")).not.toContain(token);
    expect(r.stderr).not.toContain(token);

    const user = await createAuthenticator(db.database.db)(token);
    expect(user?.userName).toBe("bob");
    const users = await db.database.sql<{ n: number }[]>`select count(*)::int as n from users where name = 'bob'`;
    expect(users[0]!.n).toBe(1);
    for (const text of await storedText()) expect(text).not.toContain(token);
  });
});

describe("authentication over HTTP", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: 0, tag: "tokens" });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const expectUnauthorized = (res: { status: number; body: any }) => {
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
    expect(res.body.error.message.length).toBeGreaterThan(0);
  };

  test("GET /v1/flows without a token is 401", async () => {
    expectUnauthorized(await stack.http("GET", "/v1/flows", undefined, { token: null }));
  });

  test("GET /v1/flows with a wrong bearer token is 401", async () => {
    expectUnauthorized(await stack.http("GET", "/v1/flows", undefined, { token: "wrong" }));
  });

  test("a malformed Authorization header is 401", async () => {
    expectUnauthorized(await stack.http("GET", "/v1/flows", undefined, { token: null, headers: { authorization: `Basic ${stack.token}` } }));
  });

  test("GET /v1/flows with the stack's token is 200", async () => {
    const res = await stack.http("GET", "/v1/flows");
    expect(res.status).toBe(200);
  });

  test("bearerToken reads the Authorization header, and ?token= only where allowed (the socket)", () => {
    const req = (url: string, authorization?: string) =>
      new Request(url, authorization ? { headers: { authorization } } : undefined);
    expect(bearerToken(req("http://x/v1/flows", "Bearer abc"))).toBe("abc");
    expect(bearerToken(req("http://x/v1/flows", "bearer  abc "))).toBe("abc");
    expect(bearerToken(req("http://x/v1/ws?token=q"), true)).toBe("q");
    expect(bearerToken(req("http://x/v1/flows?token=q"))).toBeNull();
    // A Bearer header wins over the query; another scheme (a proxy's own) leaves the query to count.
    expect(bearerToken(req("http://x/v1/ws?token=q", "Bearer h"), true)).toBe("h");
    expect(bearerToken(req("http://x/v1/ws?token=q", "Basic h"), true)).toBe("q");
    expect(bearerToken(req("http://x/v1/flows?token=q", "Basic h"))).toBeNull();
    expect(bearerToken(req("http://x/v1/flows", "Bearer a b"))).toBeNull();
    expect(bearerToken(req("http://x/v1/flows"))).toBeNull();
  });

  test("a wrong ?token= is never accepted on GET /v1/flows", async () => {
    const bad = await fetch(`${stack.baseUrl}/v1/flows?token=wrong`);
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
    await bad.text();
  });

  // Authentication runs before input validation.
  test("without a token, a request with invalid input is still 401", async () => {
    expectUnauthorized(await stack.http("GET", "/v1/flows?limit=abc", undefined, { token: null }));
    expectUnauthorized(await stack.http("POST", "/v1/flows", {}, { token: null }));
    const bad = await fetch(`${stack.baseUrl}/v1/flows?token=wrong`);
    expectUnauthorized({ status: bad.status, body: await bad.json() });
  });

  test("POST /v1/flows without a token is 401 and creates nothing", async () => {
    const res = await stack.http("POST", "/v1/flows", { name: "x", root: { name: "echo", data: {} } }, { token: null });
    expectUnauthorized(res);
    const flows = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows`;
    expect(flows[0]!.n).toBe(0);
  });

  test("a revoked token is refused over HTTP", async () => {
    const token = await stack.newUser("mallory");
    await stack.database.sql`update api_tokens set revoked_at = now() where token_hash = ${hashToken(token)}`;
    // Never authenticated before revocation, so no cached answer can hide it.
    expectUnauthorized(await stack.http("GET", "/v1/flows", undefined, { token }));
  });
});
