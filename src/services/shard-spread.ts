import { Cluster } from "ioredis";
import type { Config } from "../config";
import { readSlotRanges, type RedisClient, type SlotRange } from "../redis";
import { configuredShards, keySlot, shardPrefix } from "../shards";
import { withTimeout } from "../timeout";

/** How the configured shards fall on a cluster's masters. */
export interface ShardSpread {
  masters: number;
  shards: number;
  /** Masters that own none of the configured shards' slots: they take no new work. */
  mastersWithoutShard: string[];
}

/** Where `FLOWD_SHARDS` of `prefix` fall on this slot map. */
export function shardSpread(ranges: readonly SlotRange[], config: Pick<Config, "prefix" | "shards">): ShardSpread {
  const slots = configuredShards(config.shards).map((shard) => keySlot(shardPrefix(config.prefix, shard)));
  const masters = [...new Set(ranges.map((r) => r.master))].sort();
  const holding = new Set(ranges.filter((r) => slots.some((s) => s >= r.from && s <= r.to)).map((r) => r.master));
  return { masters: masters.length, shards: slots.length, mastersWithoutShard: masters.filter((m) => !holding.has(m)) };
}

/**
 * The shortfall to report, or null. FLOWD_SHARDS=1 on a cluster puts everything in one slot by the
 * operator's choice (`{flowd}`), so idle masters are then no news.
 */
export function spreadShortfall(spread: ShardSpread): string | null {
  const idle = spread.mastersWithoutShard;
  if (spread.shards <= 1 || idle.length === 0) return null;
  return (
    `${idle.length} of ${spread.masters} Redis Cluster masters (${idle.join(", ")}) own none of the ${spread.shards} shards' slots and take no new work: ` +
    `set FLOWD_SHARDS to a multiple of the masters, or give each master an equal contiguous range of slots (redis-cli --cluster rebalance).`
  );
}

/** For /readyz: on a cluster, the spread read afresh (a failed read reports nothing rather than hiding the other checks). */
export async function readShardSpread(redis: RedisClient, config: Pick<Config, "prefix" | "shards">): Promise<ShardSpread | null> {
  if (!(redis instanceof Cluster)) return null;
  const ranges = await withTimeout(readSlotRanges(redis), 1_500, "reading the cluster's slot map").catch(() => null);
  return ranges ? shardSpread(ranges, config) : null;
}
