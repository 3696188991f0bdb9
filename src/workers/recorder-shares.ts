import type { Db } from "../db/client";
import { listLiveWorkers } from "../db/queries/registry";
import type { Logger } from "../log";
import { WORKER_STALE_MS } from "../services/registry-views";
import type { Lease } from "./lease";
import { startLoop } from "./loop";

/** A lease is held at least this long before it is handed on: a share that changes back and forth does not flap. */
const MIN_HOLD_MS = 10_000;
/** A process over its share still steps in for a lease nobody took for this long (its holder died, or the count is stale). */
const STEP_IN_MS = 10_000;

/**
 * Spreads the shards' recorder leases over the live worker processes (the handler registry's
 * heartbeats say how many there are), so N recorders in N processes write in parallel instead of
 * the first process to start recording every shard. A process takes a free lease while it holds
 * fewer than its share (shards / processes, rounded up), hands one on when it holds more, and
 * takes any lease that stayed free for STEP_IN_MS whatever its share: no shard goes unrecorded
 * because the count was wrong.
 */
export function startRecorderShares(deps: { db: Db; log: Logger }, everyMs = 2_000) {
  const leases: Lease[] = [];
  const heldSince = new Map<Lease, number>();
  const declinedSince = new Map<Lease, number>();
  let processes = 1;
  const share = () => Math.ceil(leases.length / processes);
  const heldCount = () => leases.filter((l) => l.held).length;

  const loop = startLoop(
    everyMs,
    async () => {
      processes = Math.max(1, (await listLiveWorkers(deps.db, WORKER_STALE_MS)).length);
      const now = Date.now();
      for (const l of leases) if (!l.held) heldSince.delete(l);
      else if (!heldSince.has(l)) heldSince.set(l, now);
      if (heldCount() <= share()) return;
      const handOn = leases.filter((l) => l.held && now - (heldSince.get(l) ?? now) >= MIN_HOLD_MS).pop();
      if (!handOn) return;
      deps.log.info("holding more recorder leases than this process's share; handing one on", { held: heldCount(), share: share(), processes });
      handOn.release();
    },
    (err) => deps.log.debug("could not count worker processes; keeping the leases as they are", { err: String(err) }),
  );

  return {
    /** The `mayTake` of one lease; `track` must then be given the lease itself. */
    mayTake(lease: () => Lease | undefined): () => boolean {
      return () => {
        const l = lease();
        // The first try comes before the lease is tracked (it is being made): count it as one of the leases.
        if (!l) return heldCount() < Math.ceil((leases.length + 1) / processes);
        const now = Date.now();
        if (heldCount() < share()) {
          declinedSince.delete(l);
          return true;
        }
        const since = declinedSince.get(l) ?? now;
        declinedSince.set(l, since);
        if (now - since < STEP_IN_MS) return false;
        declinedSince.delete(l);
        return true;
      };
    },
    track(lease: Lease) {
      leases.push(lease);
    },
    stop: () => loop.stop(),
  };
}
