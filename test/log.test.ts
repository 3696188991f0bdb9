import { describe, expect, test } from "bun:test";
import { DrizzleQueryError } from "drizzle-orm";
import { createLogger, describeError, withoutParameters } from "../src/log";

// The logger is the last line of defence for users' data: whatever a call site hands it (an
// error, String(err), a wrapped postgres error), SQL parameters and quoted values do not come out.
const capture = () => {
  const lines: string[] = [];
  return { log: createLogger("debug", { role: "test" }, (l) => lines.push(l)), lines };
};

/** A postgres.js error as it arrives: its own fields hold the query's parameters. */
function postgresError(message: string, code: string) {
  class PostgresError extends Error {}
  const err = new PostgresError(message) as PostgresError & Record<string, unknown>;
  Object.assign(err, { severity: "ERROR", code, routine: "errorMissingColumn", detail: "Key (k)=(secret-detail) already exists.", where: "JSON data, line 1: secret-where" });
  Object.defineProperty(err, "parameters", { value: ["secret-param"], enumerable: true });
  return err;
}

describe("errors in log lines", () => {
  test("a Drizzle failed query keeps its SQL, not its params, and its postgres cause by class and code", () => {
    const { log, lines } = capture();
    const err = new DrizzleQueryError('insert into "jobs" ("data") values ($1)', [{ a: "secret-value" }, "secret-2"], postgresError("invalid input syntax for type json", "22P02"));
    log.error("unhandled error", { err, path: "/v1/jobs" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("secret");
    const entry = JSON.parse(lines[0]!);
    expect(entry.err).toMatchObject({ class: "DrizzleQueryError", message: 'Failed query: insert into "jobs" ("data") values ($1) (parameters not logged)' });
    expect(entry.err.stack).toStartWith("Error: Failed query:");
    expect(entry.err.stack).toContain("\n    at ");
    expect(entry.err.cause).toMatchObject({ class: "PostgresError", code: "22P02", message: "invalid input syntax for type json" });
  });

  test("String(err) of a failed query, the way many call sites log, loses its params too", () => {
    const { log, lines } = capture();
    const err = new DrizzleQueryError("select 1 where x = $1", ["secret-value"], new Error("boom"));
    log.warn("could not", { err: String(err), other: "kept" });
    expect(lines[0]).not.toContain("secret");
    expect(JSON.parse(lines[0]!)).toMatchObject({ err: "Error: Failed query: select 1 where x = $1 (parameters not logged)", other: "kept" });
  });

  test("a Postgres message quoting the value keeps its words only", () => {
    const err = postgresError('invalid input syntax for type integer: "secret-value"', "22P02");
    expect(describeError(err)).toMatchObject({ class: "PostgresError", code: "22P02", message: 'invalid input syntax for type integer: "…"' });
    expect(JSON.stringify(describeError(err))).not.toContain("secret");
    expect(withoutParameters('PostgresError: invalid input value for enum job_status: "secret"')).toBe('PostgresError: invalid input value for enum job_status: "…"');
  });

  test("an error under any field name is described, not spread", () => {
    const { log, lines } = capture();
    log.info("x", { error: new DrizzleQueryError("select $1", ["secret"], undefined as unknown as Error) });
    expect(lines[0]).not.toContain("secret");
    expect(JSON.parse(lines[0]!).error.class).toBe("DrizzleQueryError");
  });

  test("a long query is shortened", () => {
    const query = "insert into jobs values " + Array.from({ length: 5000 }, (_, i) => `($${i + 1})`).join(",");
    const out = withoutParameters(`Failed query: ${query}\nparams: secret`);
    expect(out.length).toBeLessThan(600);
    expect(out).toEndWith("… (parameters not logged)");
  });

  test("ordinary fields and messages are untouched", () => {
    const { log, lines } = capture();
    log.info("listening", { url: "http://127.0.0.1:3000", n: 3 });
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "info", msg: "listening", role: "test", url: "http://127.0.0.1:3000", n: 3 });
  });
});
