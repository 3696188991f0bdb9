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
