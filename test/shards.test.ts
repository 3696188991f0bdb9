import { expect, test } from "bun:test";
import { loadConfig, ConfigError } from "../src/config";
import { configuredShards, cursorName, pickShard, shardPrefix } from "../src/shards";

test("one shard keeps the plain prefix; more get a hash tag each, never a tag nested in the prefix's own", () => {
  expect(configuredShards(1)).toEqual([null]);
  expect(configuredShards(3)).toEqual([0, 1, 2]);
  expect(shardPrefix("flowd", null)).toBe("flowd");
  expect(shardPrefix("flowd", 2)).toBe("{flowd-2}");
  expect(shardPrefix("{flowd}", 0)).toBe("{flowd-0}");
  expect(cursorName("flowd", null, "flows")).toBe("flows");
  expect(cursorName("{flowd-1}", 1, "flows")).toBe("{flowd-1}:flows");
});

test("a shard is picked from the id alone, the same in every process, and ids spread over all shards", () => {
  expect(pickShard("c0abc", 1)).toBeNull();
  const ids = Array.from({ length: 3000 }, (_, i) => `c${i.toString(36).padStart(24, "0")}`);
  const counts = [0, 0, 0];
  for (const id of ids) counts[pickShard(id, 3)!]!++;
  for (const n of counts) expect(n).toBeGreaterThan(800);
  expect(ids.map((id) => pickShard(id, 3))).toEqual(ids.map((id) => pickShard(id, 3)));
});

test("REDIS_CLUSTER_NODES and FLOWD_SHARDS are read, and one shard on a cluster needs a hash-tagged prefix", () => {
  const c = loadConfig({ REDIS_CLUSTER_NODES: "10.0.0.1:7000,redis-b:7001", FLOWD_SHARDS: "4" });
  expect(c.redisClusterNodes).toEqual([{ host: "10.0.0.1", port: 7000 }, { host: "redis-b", port: 7001 }]);
  expect(c.shards).toBe(4);
  expect(loadConfig({}).shards).toBe(1);
  expect(loadConfig({}).redisClusterNodes).toEqual([]);
  expect(loadConfig({ REDIS_CLUSTER_NODES: "127.0.0.1:7000", FLOWD_PREFIX: "{flowd}" }).prefix).toBe("{flowd}");
  const refused = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return "";
    } catch (err) {
      return (err as ConfigError).problems.join("; ");
    }
  };
  expect(refused({ REDIS_CLUSTER_NODES: "127.0.0.1:7000" })).toContain("FLOWD_PREFIX");
  expect(refused({ REDIS_CLUSTER_NODES: "127.0.0.1" })).toContain("REDIS_CLUSTER_NODES");
  expect(refused({ FLOWD_SHARDS: "0" })).toContain("FLOWD_SHARDS");
});
