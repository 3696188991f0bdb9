/**
 * Shards: the deployment's BullMQ keys spread over several hash-tagged prefixes, so that a Redis
 * Cluster's masters share the work. BullMQ needs every key of a flow in one slot (a flow across
 * tags fails with CROSSSLOT), so whole flows are sharded, never queues.
 *
 * A row stores its shard: `null` is the plain FLOWD_PREFIX (FLOWD_SHARDS=1, and every row written
 * before sharding existed), `n` is `{<prefix>-<n>}`. Changing FLOWD_SHARDS then only moves new
 * work; a row keeps naming the keys its jobs were added under.
 */
export type Shard = number | null;

/** The key prefix of a shard. `{flowd}` as FLOWD_PREFIX gives `{flowd-0}`, not `{{flowd}-0}` (whose tag would be `{flowd`, one slot for all). */
export function shardPrefix(prefix: string, shard: Shard): string {
  if (shard === null) return prefix;
  return `{${prefix.replace(/[{}]/g, "")}-${shard}}`;
}

/** The shards new work goes to with FLOWD_SHARDS=`count`. */
export const configuredShards = (count: number): Shard[] => (count <= 1 ? [null] : Array.from({ length: count }, (_, i) => i));

/** The shard new work with this id goes to: a stable hash (FNV-1a) of the id, so every process picks the same. */
export function pickShard(id: string, count: number): Shard {
  if (count <= 1) return null;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % count;
}

/**
 * Where a recorder's stream position is stored (stream_cursors.queue): the queue's name on the
 * plain prefix, as before sharding, and `<shard's key prefix>:<queue>` on a shard (queue names hold no colon).
 */
export const cursorName = (keyPrefix: string, shard: Shard, queue: string) => (shard === null ? queue : `${keyPrefix}:${queue}`);

/** A label for logs and metrics. */
export const shardLabel = (shard: Shard) => (shard === null ? "default" : String(shard));

/** Sorted, unique: the shards to serve, from configured ones and those rows still use. */
export function mergeShards(...lists: Shard[][]): Shard[] {
  const set = new Set<Shard>(lists.flat());
  return [...set].sort((a, b) => (a ?? -1) - (b ?? -1));
}
