import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/**
 * Keyset pages with previous/next: the cursor of every page seen is kept, so going back is a
 * request for a cursor already known. Changing `key` (the filters) starts over at page one.
 */
export function usePaged<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>, key: string) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [index, setIndex] = useState(0);
  const [page, setPage] = useState<Page<T> | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    setCursors([undefined]);
    setIndex(0);
  }, [key]);
  useEffect(() => {
    let stale = false;
    fetchPage(cursors[index])
      .then((p) => {
        if (stale) return;
        setPage(p);
        setError(null);
      })
      .catch((e) => !stale && setError(e instanceof ApiError ? e : new ApiError(0, "error", String(e))));
    return () => {
      stale = true;
    };
  }, [key, index, version]);
  const next = useCallback(() => {
    if (!page?.nextCursor) return;
    setCursors((c) => [...c.slice(0, index + 1), page.nextCursor!]);
    setIndex((i) => i + 1);
  }, [page, index]);
  const prev = useCallback(() => setIndex((i) => Math.max(0, i - 1)), []);
  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { page, setPage, error, index, next, prev, reload };
}
