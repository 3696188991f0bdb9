import calculateSlot from "cluster-key-slot";

/**
 * Shards: the deployment's BullMQ keys spread over several hash-tagged prefixes, so that a Redis
 * Cluster's masters share the work. BullMQ needs every key of a flow in one slot (a flow across
 * tags fails with CROSSSLOT), so whole flows are sharded, never queues.
 *
 * A row stores its shard, and the stored value alone names the keys its jobs were added under, so
 * changing FLOWD_SHARDS (or this scheme) only moves new work:
 * - `null`: the plain FLOWD_PREFIX (FLOWD_SHARDS=1, and every row written before sharding existed);
 * - `0` … `255`: the first scheme's `{<prefix>-<n>}`, whose slots fell wherever CRC16 put them, so
 *   whether every master got one was chance. Still served while rows use them; never picked anew;
 * - `AIMED + s`: a tag aimed at slot `s` (`{<prefix>@<s>-<suffix>}`, see `aimedTag`). FLOWD_SHARDS=N
 *   aims shard n at the centre of the n-th of N equal slot ranges, so the tags' slots are evenly
 *   spaced and a cluster whose masters hold equal contiguous ranges (`redis-cli --cluster create`)
 *   gives every master its share whenever N is a multiple of the masters.
 */
export type Shard = number | null;

/** Redis Cluster's hash slots. */
export const SLOTS = 16_384;
/** Stored shards from here up are aimed at slot `shard - AIMED`; the first scheme's stay below 256. */
export const AIMED = 16_384;
/** How far an aimed tag's slot may sit from its aim: far less than half a range (FLOWD_SHARDS ≤ 256 gives ranges of 64 slots). */
export const AIM_SLACK = 16;

/** The slot shard `n` of `count` aims at: the centre of the n-th of `count` equal ranges. */
export const aimOf = (n: number, count: number) => Math.floor(((2 * n + 1) * SLOTS) / (2 * count));

/** The hash slot Redis Cluster gives a key (CRC16 of its hash tag, or of the whole key, mod 16384): ioredis's own function. */
export const keySlot = (key: string): number => calculateSlot(key);

const circularDistance = (a: number, b: number) => Math.min(Math.abs(a - b), SLOTS - Math.abs(a - b));

const aimedTags = new Map<string, string>();

/**
 * The hash tag (without braces) aimed at `slot` for a brace-free prefix: `<prefix>@<slot>-<k>` with
 * the first base-36 counter `k` whose CRC16 slot lies within AIM_SLACK of `slot` (about 500 tries,
 * a fraction of a millisecond; an exact hit would take 16,384). A pure function of its inputs, so
 * every process, of any version that has it, finds the same tag; cached. `@` never occurs in a
 * prefix (FLOWD_PREFIX's pattern), so no prefix's tag can be another's.
 */
export function aimedTag(bare: string, slot: number): string {
  const key = `${bare}\0${slot}`;
  const cached = aimedTags.get(key);
  if (cached !== undefined) return cached;
  let best = { tag: "", distance: SLOTS };
  // Bounded for form's sake: a miss of 2^16 tries in a row has odds of about e^-130.
  for (let k = 0; k < 1 << 16 && best.distance > AIM_SLACK; k++) {
    const tag = `${bare}@${slot}-${k.toString(36)}`;
    const distance = circularDistance(keySlot(tag), slot);
    if (distance < best.distance) best = { tag, distance };
  }
  aimedTags.set(key, best.tag);
  return best.tag;
}

/** The key prefix of a shard. `{flowd}` as FLOWD_PREFIX gives `{flowd-0}`, not `{{flowd}-0}` (whose tag would be `{flowd`, one slot for all). */
export function shardPrefix(prefix: string, shard: Shard): string {
  if (shard === null) return prefix;
  const bare = prefix.replace(/[{}]/g, "");
  return shard >= AIMED ? `{${aimedTag(bare, shard - AIMED)}}` : `{${bare}-${shard}}`;
}

/** The shards new work goes to with FLOWD_SHARDS=`count`: the plain prefix for 1, else `count` evenly aimed tags. */
export const configuredShards = (count: number): Shard[] => (count <= 1 ? [null] : Array.from({ length: count }, (_, n) => AIMED + aimOf(n, count)));

/** The shard new work with this id goes to: a stable hash (FNV-1a) of the id, so every process picks the same. */
export function pickShard(id: string, count: number): Shard {
  if (count <= 1) return null;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return AIMED + aimOf((h >>> 0) % count, count);
}

/** The slot an aimed shard aims at; null for the plain prefix and the first scheme's tags, which aim nowhere. */
export const aimedSlot = (shard: Shard): number | null => (shard !== null && shard >= AIMED ? shard - AIMED : null);

/**
 * Where a recorder's stream position is stored (stream_cursors.queue): the queue's name on the
 * plain prefix, as before sharding, and `<shard's key prefix>:<queue>` on a shard (queue names hold no colon).
 */
export const cursorName = (keyPrefix: string, shard: Shard, queue: string) => (shard === null ? queue : `${keyPrefix}:${queue}`);

/** A label for logs and metrics: `default`, a first-scheme shard's number, or `@<slot>` for an aimed one. */
export const shardLabel = (shard: Shard) => (shard === null ? "default" : shard >= AIMED ? `@${shard - AIMED}` : String(shard));

/** Sorted, unique: the shards to serve, from configured ones and those rows still use. */
export function mergeShards(...lists: Shard[][]): Shard[] {
  const set = new Set<Shard>(lists.flat());
  return [...set].sort((a, b) => (a ?? -1) - (b ?? -1));
}
