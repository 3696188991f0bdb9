import type { Db } from "../db/client";
import { usersWithHeldJobs } from "../db/queries/limits";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { addLimitReleased, releaseForUsers } from "../scheduling/limit-release";

/** The longest a job held for a limit waits for a pass when nothing rang: a cancel, a lost pass. */
const IDLE_MS = 1_000;
/** Never closer than this: a rate limit's next start is met within a few milliseconds. */
const MIN_GAP_MS = 2;

/**
 * Runs release passes for every user with jobs held for a limit: when a rate-limited key's next
 * start is due (so a rate of 20/s starts a job every 50 ms, not in bursts), and at least once a
 * second for slots freed without a recorder batch (a cancel, a pass that failed or never ran). Every
 * worker process runs one; passes of one user serialise on the user's lock, so two sweepers
 * release nothing twice.
 */
export function startLimitSweeper(deps: { db: Db; producer: Producer; log: Logger }) {
  const log = deps.log.child({ component: "limit-sweeper" });
  let running = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake = () => {};
  // A ring during a pass: that pass may have read before the ringer's commit, so another follows.
  let rung = false;
  const pass = async (): Promise<number> => {
    const users = await usersWithHeldJobs(deps.db);
    if (users.length === 0) return IDLE_MS;
    const released = await releaseForUsers(deps.db, users);
    if (released.jobs.length + released.flowJobs.length > 0) await addLimitReleased(deps, released);
    return released.wakeAtMs === null ? IDLE_MS : Math.min(IDLE_MS, Math.max(MIN_GAP_MS, released.wakeAtMs - Date.now()));
  };
  const loop = (async () => {
    while (running) {
      let delay = IDLE_MS;
      rung = false;
      try {
        delay = await pass();
      } catch (err) {
        log.debug("limit release pass failed; will retry", { err: String(err) });
      }
      if (!running) break;
      if (rung) delay = MIN_GAP_MS;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
    }
  })();
  return {
    /** A pass now (the doorbell rang): a create or a limit change left jobs waiting on a rate limit. */
    wake() {
      rung = true;
      clearTimeout(timer);
      wake();
    },
    async stop() {
      running = false;
      clearTimeout(timer);
      wake();
      await loop;
    },
  };
}
