/**
 * Which held jobs a release pass lets go, given a user's keys, how many of each key's jobs run and
 * the first held jobs of each turn key (a job's first concurrency key, else its rate limit key).
 *
 * Fair turns: turn keys are served round robin, the one served longest ago first, one job a turn; a
 * key with 10,000 jobs waiting takes one turn like a key with 10. Within a turn key jobs go in the
 * order they were created, and a job that cannot go (a key it names is full, or out of starts)
 * ends its key's turns for this pass, so a key's jobs never overtake each other.
 *
 * Rate limits are GCRA (a leaky bucket kept as one time per key): a start is allowed once the key's
 * next start time has come, and moves it on by perMs / max. A pass that wakes late (a busy host)
 * may catch up what it missed of the last fifth of the period (at least one interval), no more: the
 * rate holds over time although a busy host wakes passes late, and no window of perMs sees more
 * than max plus that fifth. (A tenth lost up to 10% of the rate at a load average of 16 on 2 cores.)
 */
import type { HeldJob, KeyState } from "../db/queries/limits";
import type { WaitingReason } from "./waiting-for";

export type { HeldJob, KeyState };

export interface LimitPlan {
  release: HeldJob[];
  /** Held jobs (the head of each turn key left waiting) whose reason changed. */
  reasons: { job: HeldJob; reason: WaitingReason }[];
  /** Keys whose turn or next start moved. */
  keys: KeyState[];
  /** When the next start of a rate-limited key that has a job waiting for it is due (epoch ms). */
  wakeAtMs: number | null;
}

export function planRelease(keyStates: KeyState[], running: Map<string, number>, held: HeldJob[], nowMs: number): LimitPlan {
  const keys = new Map(keyStates.map((k) => [k.key, { ...k }]));
  const used = new Map(running);
  const byTurn = new Map<string, HeldJob[]>();
  for (const job of held) {
    const turnKey = job.concurrencyKeys?.[0] ?? job.rateKey!;
    const list = byTurn.get(turnKey);
    if (list) list.push(job);
    else byTurn.set(turnKey, [job]);
  }
  const turnOf = (k: string) => keys.get(k)?.turn ?? 0;
  const queue = [...byTurn.keys()].sort((a, b) => turnOf(a) - turnOf(b) || (a < b ? -1 : 1));
  let turn = Math.max(0, ...keyStates.map((k) => k.turn));
  const changed = new Set<string>();
  const plan: LimitPlan = { release: [], reasons: [], keys: [], wakeAtMs: null };

  while (queue.length > 0) {
    const turnKey = queue.shift()!;
    const jobs = byTurn.get(turnKey)!;
    const job = jobs[0]!;
    const blocked = blockedBy(job, keys, used, nowMs);
    if (blocked) {
      if (blocked.reason !== job.waitingFor) plan.reasons.push({ job, reason: blocked.reason });
      if (blocked.wakeAtMs !== undefined) plan.wakeAtMs = Math.min(plan.wakeAtMs ?? Infinity, blocked.wakeAtMs);
      continue;
    }
    plan.release.push(job);
    jobs.shift();
    for (const k of job.concurrencyKeys ?? []) used.set(k, (used.get(k) ?? 0) + 1);
    const rate = job.rateKey ? keys.get(job.rateKey) : undefined;
    if (rate && rate.rateMax && rate.ratePerMs) {
      rate.rateNextMs = nextStart(rate, nowMs) + rate.ratePerMs / rate.rateMax;
      changed.add(rate.key);
    }
    const own = keys.get(turnKey);
    if (own) {
      own.turn = ++turn;
      changed.add(turnKey);
    }
    if (jobs.length > 0) queue.push(turnKey);
  }
  plan.keys = [...changed].map((k) => keys.get(k)!);
  return plan;
}

/** When a rate-limited key may start its next job: its next start time, caught up by a fifth of the period at most. */
const nextStart = (k: KeyState, nowMs: number) => Math.max(k.rateNextMs ?? 0, nowMs - Math.max(k.ratePerMs! / k.rateMax!, k.ratePerMs! / 5));

function blockedBy(
  job: HeldJob,
  keys: Map<string, KeyState>,
  used: Map<string, number>,
  nowMs: number,
): { reason: WaitingReason; wakeAtMs?: number } | null {
  for (const k of job.concurrencyKeys ?? []) {
    const limit = keys.get(k)?.concurrency;
    if (limit !== null && limit !== undefined && (used.get(k) ?? 0) >= limit) return { reason: "concurrency" };
  }
  const rate = job.rateKey ? keys.get(job.rateKey) : undefined;
  if (rate && rate.rateMax && rate.ratePerMs) {
    const at = nextStart(rate, nowMs);
    if (at > nowMs) return { reason: "rateLimit", wakeAtMs: at };
  }
  return null;
}
