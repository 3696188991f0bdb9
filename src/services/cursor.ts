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
 * page is known without a count, and turns the last row shown into the next cursor.
 */
export async function keysetPage<R extends { createdAt: Date; id: string }, V>(
  q: { limit?: number; cursor?: string },
  fetch: (limit: number, before?: { createdAt: Date; id: string }) => Promise<R[]>,
  view: (row: R) => V,
): Promise<{ items: V[]; nextCursor: string | null }> {
  const limit = q.limit ?? 20;
  const rows = await fetch(limit + 1, q.cursor ? decodeCursor(q.cursor) : undefined);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page.map(view), nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null };
}
