import { expect, test } from "bun:test";
import { loadConfig, ConfigError } from "../src/config";
import { shardSpread, spreadShortfall } from "../src/services/shard-spread";
import { AIM_SLACK, aimOf, aimedSlot, configuredShards, cursorName, keySlot, pickShard, shardLabel, shardPrefix, SLOTS, type Shard } from "../src/shards";

test("one shard keeps the plain prefix; the first scheme's shards keep their tags, never a tag nested in the prefix's own", () => {
  expect(configuredShards(1)).toEqual([null]);
  expect(shardPrefix("flowd", null)).toBe("flowd");
  // Rows written before aimed tags store 0 … 255 and name these keys for good.
  expect(shardPrefix("flowd", 2)).toBe("{flowd-2}");
  expect(shardPrefix("{flowd}", 0)).toBe("{flowd-0}");
  expect(shardLabel(2)).toBe("2");
  expect(cursorName("flowd", null, "flows")).toBe("flows");
  expect(cursorName("{flowd-1}", 1, "flows")).toBe("{flowd-1}:flows");
});

test("the slot function is Redis Cluster's (CRC16 of the hash tag, mod 16384)", () => {
  // The reference values of the Redis Cluster specification: CRC16("123456789") = 0x31C3.
  expect(keySlot("123456789")).toBe(0x31c3 % SLOTS);
  expect(keySlot("{user1000}.following")).toBe(keySlot("user1000"));
});

const randomPrefix = () => `p${Math.random().toString(36).slice(2, 10)}`;
const PREFIXES = ["flowd", "{flowd}", "a", "prod.eu-1_x", "FLOWD-2", randomPrefix(), randomPrefix(), randomPrefix()];

test("FLOWD_SHARDS=N aims shard n at the centre of the n-th of N equal slot ranges, for N = 2..16 and any prefix", () => {
  for (const prefix of PREFIXES) {
    for (let count = 2; count <= 16; count++) {
      const shards = configuredShards(count);
      expect(shards).toHaveLength(count);
      shards.forEach((shard, n) => {
        const key = `${shardPrefix(prefix, shard)}:flows:1`;
        const slot = keySlot(key);
        const [from, to] = [(n * SLOTS) / count, ((n + 1) * SLOTS) / count];
        expect(aimedSlot(shard)).toBe(aimOf(n, count));
        expect(Math.abs(slot - aimOf(n, count))).toBeLessThanOrEqual(AIM_SLACK);
        if (slot < from || slot >= to) throw new Error(`${key}: slot ${slot} outside [${from}, ${to}) for shard ${n} of ${count}`);
        expect(shardLabel(shard)).toBe(`@${aimOf(n, count)}`);
        // One tag per key prefix: the keys of a shard all hash to its slot.
        expect(keySlot(`${shardPrefix(prefix, shard)}:jobs:events`)).toBe(slot);
      });
    }
  }
});

test("aimed tags are a pure function of prefix and slot: pinned, so keys written today are found by every later version", () => {
  // Changing these would strand every job stored under them: the tag scheme is part of the data.
  expect(configuredShards(3).map((s) => shardPrefix("flowd", s))).toEqual(["{flowd@2730-nz}", "{flowd@8192-k}", "{flowd@13653-aa}"]);
  expect(configuredShards(2).map((s) => shardPrefix("{flowd}", s))).toEqual(["{flowd@4096-75}", "{flowd@12288-p}"]);
  // With FLOWD_SHARDS at its maximum too, every slot stays inside its range.
  const shards = configuredShards(256);
  shards.forEach((shard, n) => {
    const slot = keySlot(shardPrefix("flowd", shard));
    expect(slot >= n * 64 && slot < (n + 1) * 64).toBe(true);
  });
  expect(new Set(shards.map((s) => shardPrefix("flowd", s))).size).toBe(256);
});

test("a shard is picked from the id alone, the same in every process, and ids spread over all shards", () => {
  expect(pickShard("c0abc", 1)).toBeNull();
  const ids = Array.from({ length: 3000 }, (_, i) => `c${i.toString(36).padStart(24, "0")}`);
  const counts = new Map<Shard, number>();
  for (const id of ids) counts.set(pickShard(id, 3), (counts.get(pickShard(id, 3)) ?? 0) + 1);
  expect([...counts.keys()].sort((a, b) => a! - b!)).toEqual(configuredShards(3));
  for (const n of counts.values()) expect(n).toBeGreaterThan(800);
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

test("the spread over a cluster's masters: none idle for 3 or 6 shards on the default split of 3, one for 2, and FLOWD_SHARDS=1 is no news", () => {
  // `redis-cli --cluster create` with three masters: 0-5460, 5461-10922, 10923-16383.
  const ranges = [
    { from: 0, to: 5460, master: "a:1" },
    { from: 5461, to: 10922, master: "b:2" },
    { from: 10923, to: 16383, master: "c:3" },
  ];
  for (const prefix of PREFIXES) {
    for (const shards of [3, 6, 9]) expect(shardSpread(ranges, { prefix, shards }).mastersWithoutShard).toEqual([]);
    const two = shardSpread(ranges, { prefix, shards: 2 });
    expect(two).toEqual({ masters: 3, shards: 2, mastersWithoutShard: ["b:2"] });
    expect(spreadShortfall(two)).toContain("b:2");
  }
  const one = shardSpread(ranges, { prefix: "{flowd}", shards: 1 });
  expect(one.mastersWithoutShard).toHaveLength(2);
  expect(spreadShortfall(one)).toBeNull();
});
