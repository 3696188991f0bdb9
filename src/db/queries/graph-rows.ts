import { inArray } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs } from "../schema";
import type { FlowJobRow } from "./flows";

/** Graph jobs by row id, with the jobs they depend on (whose results they are added with). */
export async function rowsWithDependencies(db: DbOrTx, ids: string[]): Promise<FlowJobRow[]> {
  const rows = await db.select().from(flowJobs).where(inArray(flowJobs.id, ids));
  const have = new Set(ids);
  const dependencies = [...new Set(rows.flatMap((r) => r.dependsOn ?? []))].filter((id) => !have.has(id));
  if (dependencies.length === 0) return rows;
  return [...rows, ...(await db.select().from(flowJobs).where(inArray(flowJobs.id, dependencies)))];
}
