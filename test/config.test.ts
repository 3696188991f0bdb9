import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig, RESERVED_QUEUES } from "../src/config";

/** Calls loadConfig and returns the ConfigError it throws (fails the test when it does not throw). */
function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig defaults", () => {
  test("an empty environment gives SPEC's defaults", () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBe("postgres://postgres@127.0.0.1:5432/flowd");
    expect(c.redisUrl).toBe("redis://127.0.0.1:6379");
    expect(c.port).toBe(3000);
    expect(c.host).toBe("127.0.0.1");
    expect(c.prefix).toBe("flowd");
    expect([...c.flowQueues]).toEqual(["flows"]);
    expect(c.workerConcurrency).toBe(16);
    expect(c.allowPrivateUrls).toBe(false);
    expect(c.logLevel).toBe("info");
  });

  test("empty strings count as unset", () => {
    const c = loadConfig({ PORT: "", LOG_LEVEL: "", FLOWD_QUEUES: "", FLOWD_ALLOW_PRIVATE_URLS: "" });
    expect(c.port).toBe(3000);
    expect(c.logLevel).toBe("info");
    expect([...c.flowQueues]).toEqual(["flows"]);
    expect(c.allowPrivateUrls).toBe(false);
  });

  test("variables flowd does not know are ignored", () => {
    const c = loadConfig({ PATH: "/usr/bin", SOMETHING_ELSE: "x" });
    expect(c.port).toBe(3000);
    expect(Object.keys(c)).not.toContain("PATH");
  });
});

describe("loadConfig conversions", () => {
  test("strings convert to numbers, booleans and lists", () => {
    const c = loadConfig({
      DATABASE_URL: "postgresql://u:p@db.example:5433/app",
      REDIS_URL: "rediss://cache.example:6380",
      PORT: "8080",
      HOST: "0.0.0.0",
      FLOWD_PREFIX: "{flowd}",
      FLOWD_QUEUES: "a,b",
      WORKER_CONCURRENCY: "4",
      FLOWD_ALLOW_PRIVATE_URLS: "true",
      LOG_LEVEL: "debug",
    });
    expect(c.databaseUrl).toBe("postgresql://u:p@db.example:5433/app");
    expect(c.redisUrl).toBe("rediss://cache.example:6380");
    expect(c.port).toBe(8080);
    expect(c.host).toBe("0.0.0.0");
    expect(c.prefix).toBe("{flowd}");
    expect([...c.flowQueues]).toEqual(["a", "b"]);
    expect(c.workerConcurrency).toBe(4);
    expect(c.allowPrivateUrls).toBe(true);
    expect(c.logLevel).toBe("debug");
  });

  test("FLOWD_ALLOW_PRIVATE_URLS=false stays false", () => {
    expect(loadConfig({ FLOWD_ALLOW_PRIVATE_URLS: "false" }).allowPrivateUrls).toBe(false);
  });

  test("PORT=0 (any free port) is accepted", () => {
    expect(loadConfig({ PORT: "0" }).port).toBe(0);
  });

  test("every log level SPEC names is accepted", () => {
    for (const level of ["debug", "info", "warn", "error", "silent"] as const)
      expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
  });
});

describe("loadConfig refusals", () => {
  test("several invalid variables are all named in one error", () => {
    const err = configError({ PORT: "abc", WORKER_CONCURRENCY: "0", LOG_LEVEL: "loud", DATABASE_URL: "mysql://x" });
    expect(err.problems).toHaveLength(4);
    for (const name of ["PORT", "WORKER_CONCURRENCY", "LOG_LEVEL", "DATABASE_URL"]) {
      expect(err.problems.some((p) => p.includes(name))).toBe(true);
      expect(err.message).toContain(name);
    }
  });

  test.each([
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["WORKER_CONCURRENCY", "-3"],
    ["FLOWD_ALLOW_PRIVATE_URLS", "maybe"],
    ["REDIS_URL", "http://127.0.0.1:6379"],
    ["DATABASE_URL", "127.0.0.1:5432/flowd"],
    ["FLOWD_QUEUES", "a,,b"],
    ["FLOWD_QUEUES", "has space"],
    ["FLOWD_PREFIX", "bad prefix"],
  ])("%s=%p is refused, naming the variable", (name, value) => {
    const err = configError({ [name]: value });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain(name);
  });

  // TypeBox's Value.Convert alone would truncate: PORT=80.5 → 80, PORT=1e3 → 1.
  test.each([
    ["PORT", "80.5"],
    ["PORT", "1e3"],
    ["WORKER_CONCURRENCY", "2.7"],
  ])("%s=%p (not an integer) is refused rather than truncated", (name, value) => {
    const err = configError({ [name]: value });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain(name);
  });

  test.each(RESERVED_QUEUES.map((q) => [q]))("FLOWD_QUEUES naming the reserved queue %s is refused", (queue) => {
    const err = configError({ FLOWD_QUEUES: `flows,${queue}` });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain("FLOWD_QUEUES");
    expect(err.problems[0]).toContain(queue);
  });

  test("the reserved queues are exactly jobs, schedules and webhooks", () => {
    expect([...RESERVED_QUEUES].sort()).toEqual(["jobs", "schedules", "webhooks"]);
  });

  test("a reserved queue is reported together with other problems", () => {
    const err = configError({ FLOWD_QUEUES: "jobs", PORT: "abc" });
    expect(err.problems).toHaveLength(2);
    expect(err.problems.some((p) => p.includes("FLOWD_QUEUES"))).toBe(true);
    expect(err.problems.some((p) => p.includes("PORT"))).toBe(true);
  });
});

describe("handler modules and external queues", () => {
  test("FLOWD_HANDLERS and FLOWD_EXTERNAL_QUEUES become lists", () => {
    const c = loadConfig({ FLOWD_HANDLERS: "./a.ts, ./handlers", FLOWD_EXTERNAL_QUEUES: "py,rust,py" });
    expect(c.handlerPaths).toEqual(["./a.ts", "./handlers"]);
    expect(c.externalQueues).toEqual(["py", "rust"]);
    expect(loadConfig({})).toMatchObject({ handlerPaths: [], externalQueues: [] });
  });

  test("an external queue may not be one flowd consumes itself", () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ FLOWD_QUEUES: "flows,big", FLOWD_EXTERNAL_QUEUES: "py,big,jobs", FLOWD_HANDLERS: "a,,b" });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.join("\n")).toContain("FLOWD_EXTERNAL_QUEUES may not name queues flowd consumes itself (big, jobs)");
    expect(err!.problems.join("\n")).toContain("FLOWD_HANDLERS");
  });
});

describe("the returned configuration", () => {
  test("is frozen, and so is its queue list", () => {
    const c = loadConfig({ FLOWD_QUEUES: "a,b" });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.flowQueues)).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow();
    expect(c.port).toBe(3000);
  });

  test("does not depend on the object it was read from", () => {
    const env: Record<string, string> = { PORT: "8080" };
    const c = loadConfig(env);
    env.PORT = "9090";
    expect(c.port).toBe(8080);
  });
});
