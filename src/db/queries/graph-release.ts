/**
 * The graph steps of the recorder's batch statement (see status.ts), as CTEs over `fj`, the flow
 * jobs the batch changed (id, flow_id, status, key, opts as they are now). They run in the same
 * statement, so a release or a cancel commits with the change that caused it, or not at all:
 * - `released`: held graph jobs (`waiting_for` = `dependencies`) whose dependencies are all done now
 *   lose that hold (a job under per-key limits takes its limit hold instead, for a release pass). A
 *   job with nothing else holding it is written where its add puts it (`waiting`, or `delayed` with
 *   `opts.delay`), as a create writes its jobs: the caller adds it to Redis after the commit
 *   (src/scheduling/release.ts), BullMQ's `waiting` then needs no write, and its release is one row
 *   change and one event. An add that fails puts the rows back to `pending` for the enqueuer; one a
 *   crash never made is the reconciler's (a queued row missing from Redis).
 * - `dropped`: held jobs that can no longer run because a dependency failed or was cancelled (and
 *   its policy does not let them run), transitively, end `cancelled` naming that dependency.
 * - `woken`: running jobs parked on a join (`waiting_for` = `children`, see src/services/spawn.ts)
 *   whose awaited jobs have all ended now; returned with the released ids, and promoted in Redis
 *   after the commit so they run again.
 * The statement's snapshot predates `fj`'s writes, so a dependency's status is fj's if it has one.
 */

/** A dependency is done when it completed, or failed under a policy that lets its dependents run. */
const satisfies = (status: string, opts: string) =>
  `(${status} = 'completed' or (${status} = 'failed' and (coalesce((${opts}->>'ignoreDependencyOnFailure')::boolean, false)
     or coalesce((${opts}->>'continueParentOnFailure')::boolean, false))))`;

const held = (d: string) => `${d}.waiting_for = 'dependencies' and ${d}.status = 'pending'`;

/**
 * The hold a graph job takes once its dependencies are done: none, or its per-key limits' (it then
 * waits for a release pass, src/scheduling/limit-release.ts, like a new limited job).
 */
export const LIMIT_HOLD = (d: string) =>
  `case when ${d}.concurrency_keys is not null then 'concurrency' when ${d}.rate_key is not null then 'rateLimit' end`;

export const GRAPH_STEPS = `
    done as (select id, flow_id from fj where fj.key is not null and ${satisfies("fj.status", "fj.opts")}),
    released as (
      update flow_jobs as d set waiting_for = ${LIMIT_HOLD("d")}, updated_at = now(),
        status = case when ${LIMIT_HOLD("d")} is not null then d.status
                      when coalesce((d.opts->>'delay')::bigint, 0) > 0 then 'delayed' else 'waiting' end,
        ready_at = case when ${LIMIT_HOLD("d")} is null and coalesce((d.opts->>'delay')::bigint, 0) = 0 then now() else d.ready_at end
      where d.flow_id in (select flow_id from done) and ${held("d")}
        and d.depends_on ?| array(select id from done)
        and not exists (
          select 1 from jsonb_array_elements_text(d.depends_on) as dep(id)
          join flow_jobs p on p.id = dep.id
          left join fj on fj.id = p.id
          where not ${satisfies("coalesce(fj.status, p.status)", "p.opts")})
      returning d.id, d.user_id, d.waiting_for),
    broken as (
      select id, flow_id, key, status from fj
      where fj.key is not null and fj.status in ('failed', 'cancelled') and not ${satisfies("fj.status", "fj.opts")}),
    doomed(id, flow_id, cause) as (
      select d.id, d.flow_id, b.key || case b.status when 'failed' then ' failed' else ' was cancelled' end
      from broken b join flow_jobs d on d.flow_id = b.flow_id and ${held("d")} and d.depends_on ? b.id
      union
      select d.id, d.flow_id, x.cause
      from doomed x join flow_jobs d on d.flow_id = x.flow_id and ${held("d")} and d.depends_on ? x.id),
    dropped as (
      update flow_jobs as d set status = 'cancelled', updated_at = now(), finished_at = now(),
        error = jsonb_build_object('message', 'dependency ' || x.cause, 'attemptsMade', d.attempts_made)
      from (select distinct on (id) id, cause from doomed order by id, cause) x
      where d.id = x.id and d.status = 'pending'
      returning d.id, d.flow_id),
    ended as (
      select id, flow_id from fj where fj.key is not null and fj.status in ('completed', 'failed', 'cancelled')
      union all select id, flow_id from dropped),
    woken as (
      update flow_jobs as w set waiting_for = null, updated_at = now()
      where w.flow_id in (select flow_id from ended) and w.waiting_for = 'children' and w.status = 'active'
        and w.waits_on ?| array(select id from ended)
        and not exists (
          select 1 from jsonb_array_elements_text(w.waits_on) as dep(id)
          join flow_jobs p on p.id = dep.id
          where p.id not in (select id from ended) and p.status not in ('completed', 'failed', 'cancelled'))
      returning w.id)`;
