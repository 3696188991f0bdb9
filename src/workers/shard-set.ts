import type { Db } from "../db/client";
import { shardsInUse } from "../db/queries/shards";
import type { Logger } from "../log";
import { configuredShards, mergeShards, shardLabel, type Shard } from "../shards";
import { startLoop } from "./loop";

/** How often a process looks for shards stored rows use that it does not serve yet. */
export const SHARD_CHECK_MS = 30_000;

/**
 * Where webhook deliveries were added before (the first configured shard, see Producer.home): the
 * plain prefix, and shard 0 of the first tag scheme. A delivery has no row naming its shard, so
 * these are served while their queue still holds one.
 */
export const FORMER_HOMES: Shard[] = [null, 0];

/**
 * The shards this process serves: the configured ones (FLOWD_SHARDS), every shard a stored row
 * still uses, and a former home whose deliveries wait (`hasDeliveries`), so that changing
 * FLOWD_SHARDS or the tag scheme, or a process started with another value, strands no job. `add`
 * runs once per shard, as it is found (first the configured ones, at start); a shard is never
 * dropped while the process runs: a restart drops those that emptied.
 */
export function startShardSet(
  deps: { db: Db; shards: number; log: Logger; add: (shard: Shard) => Promise<void>; hasDeliveries?: (shard: Shard) => Promise<boolean> },
  everyMs = SHARD_CHECK_MS,
) {
  const served = new Set<Shard>();
  const serve = async (shards: Shard[]) => {
    for (const shard of shards) {
      if (served.has(shard)) continue;
      served.add(shard);
      await deps.add(shard);
    }
  };
  const found = async () => {
    const inUse = await shardsInUse(deps.db);
    const homes = FORMER_HOMES.filter((s) => !served.has(s) && !inUse.includes(s));
    // A Redis that cannot answer (or a plain prefix without a tag, on a cluster) has nothing to serve there.
    const waits = await Promise.all(homes.map((s) => deps.hasDeliveries?.(s).catch(() => false) ?? false));
    const waiting = homes.filter((_, i) => waits[i]);
    const fresh = mergeShards(inUse, waiting).filter((s) => !served.has(s));
    if (fresh.length > 0) deps.log.info("serving shards that stored rows or waiting deliveries still use", { shards: fresh.map(shardLabel) });
    await serve(fresh);
  };
  const ready = (async () => {
    await serve(configuredShards(deps.shards));
    await found().catch((err) => deps.log.warn("could not list the shards rows use; will look again", { err: String(err) }));
  })();
  let loop: ReturnType<typeof startLoop> | null = null;
  const started = ready.then(() => {
    loop = startLoop(everyMs, found, (err) => deps.log.debug("shard check failed; will retry", { err: String(err) }));
  });
  return {
    ready,
    get shards(): Shard[] {
      return mergeShards([...served]);
    },
    async stop() {
      await started.catch(() => {});
      await loop?.stop();
    },
  };
}
