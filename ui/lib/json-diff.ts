import { diffLines } from "diff";

/** JSON with object keys sorted at every depth, two-space indented: two versions line up key by key. */
export function canonicalPretty(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]))
        : v;
  return JSON.stringify(sort(value), null, 2) ?? "null";
}

/** One row of a side-by-side diff: a line on the left (older), the right (newer), or both when unchanged. */
export interface DiffRow {
  left: string | null;
  right: string | null;
  kind: "same" | "changed" | "removed" | "added";
}

const lines = (text: string) => text.replace(/\n$/, "").split("\n");

/**
 * Two JSON values side by side (jsdiff's line diff over their canonical text): unchanged lines on
 * both sides, a removed run beside the added run that replaced it, line for line, and what is
 * left of either run alone on its side.
 */
export function sideBySide(older: unknown, newer: unknown): DiffRow[] {
  const rows: DiffRow[] = [];
  const parts = diffLines(canonicalPretty(older) + "\n", canonicalPretty(newer) + "\n");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (!p.added && !p.removed) {
      for (const l of lines(p.value)) rows.push({ left: l, right: l, kind: "same" });
      continue;
    }
    const next = parts[i + 1];
    const removed = p.removed ? lines(p.value) : [];
    const added = p.added ? lines(p.value) : p.removed && next?.added ? (i++, lines(next.value)) : [];
    for (let k = 0; k < Math.max(removed.length, added.length); k++) {
      const left = removed[k] ?? null;
      const right = added[k] ?? null;
      rows.push({ left, right, kind: left !== null && right !== null ? "changed" : left !== null ? "removed" : "added" });
    }
  }
  return rows;
}
