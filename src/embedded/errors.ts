/** The embedded Postgres cannot be used: its message is the one line a person sees before flowd exits 1. */
export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
}
