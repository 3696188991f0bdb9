import { InvalidInput } from "../errors";

/** Opaque page cursors: the (created_at, id) of the last item, so pages neither skip nor repeat. */
export const encodeCursor = (createdAt: Date, id: string) =>
  Buffer.from(`${createdAt.getTime()}:${id}`).toString("base64url");

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const match = /^(\d{1,15}):([0-9a-z-]{1,64})$/.exec(text);
  if (!match) throw new InvalidInput("The cursor is not one this API returned; pass nextCursor from the previous page.", undefined, "invalid_cursor");
  return { createdAt: new Date(Number(match[1])), id: match[2]! };
}

/**
 * One newest-first page: asks `fetch` for one row more than the limit, so the presence of a next
 * page is known without a count, and turns the last row shown into the next cursor. A page is also
 * cut at PAGE_MAX_BYTES of JSON.
 */
/** The most JSON one page carries: past it the page ends early, and its cursor goes on from there. */
export const PAGE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * How many of `items` fit in `maxBytes` of JSON, keeping at least one (an item alone may be as large
 * as the body limit allowed it to be), so a page of large items is cut, not sent whole.
 */
export function itemsWithinBytes(items: readonly unknown[], maxBytes = PAGE_MAX_BYTES): number {
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(items[i]) ?? "");
    if (bytes > maxBytes && i > 0) return i;
  }
  return items.length;
}

export async function keysetPage<R extends { createdAt: Date; id: string }, V>(
  q: { limit?: number; cursor?: string },
  fetch: (limit: number, before?: { createdAt: Date; id: string }) => Promise<R[]>,
  view: (row: R) => V,
): Promise<{ items: V[]; nextCursor: string | null }> {
  const limit = q.limit ?? 20;
  const rows = await fetch(limit + 1, q.cursor ? decodeCursor(q.cursor) : undefined);
  const views = rows.slice(0, limit).map(view);
  const kept = itemsWithinBytes(views);
  const last = rows[kept - 1];
  const more = rows.length > kept;
  return { items: views.slice(0, kept), nextCursor: more && last ? encodeCursor(last.createdAt, last.id) : null };
}
