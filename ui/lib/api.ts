/**
 * The REST client: the public API, with the token from session storage. Errors keep the API's own
 * `{ error: { code, message, details } }` so forms can show what the server said.
 */
const TOKEN_KEY = "flowd.token";

export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token: string) => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: { path?: string; message?: string }[],
  ) {
    super(message);
  }
}

/** Listeners told when the API answers 401: the token was revoked, so the page signs out. */
const unauthorizedListeners = new Set<() => void>();
export const onUnauthorized = (fn: () => void) => {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
};

export async function api<T = any>(method: string, path: string, body?: unknown, token = getToken()): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: any = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const err = parsed?.error;
    // Only the stored token going bad signs the page out; a token being tried at sign-in is just wrong.
    if (res.status === 401 && token && token === getToken()) for (const fn of unauthorizedListeners) fn();
    throw new ApiError(res.status, err?.code ?? "http_" + res.status, err?.message ?? `The server answered ${res.status}.`, err?.details);
  }
  return parsed as T;
}

/** A query string from the set values only. */
export const query = (params: Record<string, string | number | undefined | null>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
};
