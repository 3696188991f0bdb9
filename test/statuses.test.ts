import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EVENT_TYPE_NAMES } from "../src/event-types";
import { FINISHED_STATUSES, FLOW_STATUSES, JOB_STATUSES, QUEUED_STATUSES } from "../src/statuses";
import { createTestDatabase } from "./helpers/db";

// The migrated database's own definitions (every flowd_* function, every index), read back from the
// catalog: what the triggers really do, whichever migration last replaced them.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let functions: { name: string; body: string }[];
let indexes: { name: string; def: string }[];
beforeAll(async () => {
  db = await createTestDatabase();
  functions = await db.database.sql<{ name: string; body: string }[]>`select proname as name, prosrc as body from pg_proc where proname like 'flowd%'`;
  indexes = await db.database.sql<{ name: string; def: string }[]>`select indexname as name, indexdef as def from pg_indexes where schemaname = 'public'`;
});
afterAll(async () => {
  await db?.drop();
});

const literals = (list: string) => [...list.matchAll(/'([^']*)'/g)].map((m) => m[1]!);

/** Every status literal the SQL compares a status column with: `status = 'x'`, `status in ('x', …)`, `CASE n.status WHEN 'x'`, `ARRAY['x', …]`. */
function statusLiterals(sqlText: string): string[] {
  const out: string[] = [];
  for (const m of sqlText.matchAll(/status\s*(?:=|<>|!=)\s*'([^']+)'/gi)) out.push(m[1]!);
  for (const m of sqlText.matchAll(/status\s+(?:not\s+)?in\s*\(([^)]*)\)/gi)) out.push(...literals(m[1]!));
  for (const m of sqlText.matchAll(/status\s*=\s*any\s*\(\s*array\[([^\]]*)\]/gi)) out.push(...literals(m[1]!));
  for (const m of sqlText.matchAll(/case\s+\w+\.status((?:\s+when\s+'[^']+'\s+then[\s\S]*?)+?)\s+(?:else|end)\b/gi))
    out.push(...[...m[1]!.matchAll(/when\s+'([^']+)'/gi)].map((w) => w[1]!));
  return out;
}

describe("one list of statuses, and the database agrees with it", () => {
  test("every status the triggers and indexes name is a job or flow status", () => {
    const named = [...functions.flatMap((f) => statusLiterals(f.body)), ...indexes.flatMap((i) => statusLiterals(i.def))];
    expect(named.length).toBeGreaterThan(10);
    const known = new Set<string>([...JOB_STATUSES, ...FLOW_STATUSES]);
    expect([...new Set(named)].filter((s) => !known.has(s))).toEqual([]);
  });

  test("the flows trigger's finishing statuses are FINISHED_STATUSES, the queued indexes' are QUEUED_STATUSES", () => {
    const flows = functions.find((f) => f.name === "flowd_flows_changed")!;
    const finishing = [...flows.body.matchAll(/n\.status\s+in\s*\(([^)]*)\)/gi)].map((m) => literals(m[1]!).sort());
    expect(finishing.length).toBeGreaterThan(0);
    for (const list of finishing) expect(list).toEqual([...FINISHED_STATUSES].sort());
    const queued = indexes.filter((i) => i.name.endsWith("_queued_idx"));
    expect(queued.map((i) => i.name).sort()).toEqual(["flow_jobs_queued_idx", "jobs_queued_idx"]);
    for (const i of queued) expect(statusLiterals(i.def).sort()).toEqual([...QUEUED_STATUSES].sort());
  });
});

describe("one list of event types, and the triggers write only those", () => {
  test("every type a trigger can write is in EVENT_TYPES, and every listed type is written by one", () => {
    const bodies = functions.map((f) => f.body).join("\n");
    const written = new Set([...bodies.matchAll(/'((?:flow|job)\.[a-z_]+)'/g)].map((m) => m[1]!));
    // 'flow.' || n.status, written only when the flow reaches one of its finishing statuses.
    expect(bodies).toContain("'flow.' || n.status");
    for (const s of FINISHED_STATUSES) written.add(`flow.${s}`);
    expect([...written].sort()).toEqual([...EVENT_TYPE_NAMES].sort());
  });
});
