import type { DbOrTx } from "../client";

/**
 * Builds a statement once per database handle and reuses it. Drizzle otherwise rebuilds the SQL
 * text on every call, which showed up in CPU profiles of the request and recorder paths.
 */
export function preparedPerDb<T>(build: (db: DbOrTx) => T): (db: DbOrTx) => T {
  const built = new WeakMap<DbOrTx, T>();
  return (db) => {
    let query = built.get(db);
    if (!query) built.set(db, (query = build(db)));
    return query;
  };
}
