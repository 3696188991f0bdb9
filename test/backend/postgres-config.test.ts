import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config";
import { runFlowd } from "../helpers/process";

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("FLOWD_QUEUE_BACKEND", () => {
  test("defaults to redis, with the bullmq schema", () => {
    const c = loadConfig({});
    expect(c.queueBackend).toBe("redis");
    expect(c.queueSchema).toBe("bullmq");
  });

  test("postgres is taken, with a schema of one's own", () => {
    const c = loadConfig({ FLOWD_QUEUE_BACKEND: "postgres", FLOWD_QUEUE_SCHEMA: "flowd_queues" });
    expect(c.queueBackend).toBe("postgres");
    expect(c.queueSchema).toBe("flowd_queues");
  });

  test.each(["Redis", "pg", "mysql", " postgres"])("%p is refused, naming the choices", (value) => {
    const [p, ...rest] = problems({ FLOWD_QUEUE_BACKEND: value });
    expect(rest).toEqual([]);
    expect(p).toContain("FLOWD_QUEUE_BACKEND");
    expect(p).toContain("redis, postgres");
  });

  test.each(["1bad", "has-dash", "a".repeat(64), "x;drop"])("schema %p is refused", (value) => {
    const [p] = problems({ FLOWD_QUEUE_BACKEND: "postgres", FLOWD_QUEUE_SCHEMA: value });
    expect(p).toContain("FLOWD_QUEUE_SCHEMA");
  });

  test("shards with the postgres backend are refused, saying why", () => {
    const [p, ...rest] = problems({ FLOWD_QUEUE_BACKEND: "postgres", FLOWD_SHARDS: "4" });
    expect(rest).toEqual([]);
    expect(p).toContain("FLOWD_SHARDS=4");
    expect(p).toContain("Redis Cluster");
    expect(p).toContain("one database");
    // One shard is the same as none: accepted.
    expect(loadConfig({ FLOWD_QUEUE_BACKEND: "postgres", FLOWD_SHARDS: "1" }).shards).toBe(1);
    // On Redis, shards stay allowed.
    expect(loadConfig({ FLOWD_SHARDS: "4" }).shards).toBe(4);
  });

  test("a Redis Cluster with the postgres backend is refused", () => {
    const [p, ...rest] = problems({ FLOWD_QUEUE_BACKEND: "postgres", REDIS_CLUSTER_NODES: "127.0.0.1:7000" });
    expect(rest).toEqual([]);
    expect(p).toContain("REDIS_CLUSTER_NODES");
    expect(p).toContain("postgres");
  });
});

describe("flowd process: a refused backend", () => {
  const oneLine = (stderr: string) => stderr.split("\n").filter((l) => l.trim() !== "");

  test("an unknown FLOWD_QUEUE_BACKEND exits 1 with one line", async () => {
    const r = await runFlowd(["migrate"], { FLOWD_QUEUE_BACKEND: "sqlite" });
    expect(r.code).toBe(1);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('FLOWD_QUEUE_BACKEND="sqlite" must be one of redis, postgres');
    expect(r.stdout).toBe("");
  });

  test("FLOWD_SHARDS>1 with postgres exits 1 with one line saying why", async () => {
    const r = await runFlowd([], { FLOWD_QUEUE_BACKEND: "postgres", FLOWD_SHARDS: "3", PORT: "0" });
    expect(r.code).toBe(1);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("FLOWD_SHARDS=3 cannot be used with FLOWD_QUEUE_BACKEND=postgres");
    expect(r.stderr).not.toContain("    at ");
  });
});
