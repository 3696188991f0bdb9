export interface HttpReply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}
export type HttpOptions = { token?: string | null; headers?: Record<string, string>; raw?: string };

/** Calls an API at `baseUrl` as `defaultToken`'s user (or another `token`, or none with null). */
export function httpClient(baseUrl: string, defaultToken: string) {
  return async function http<T = any>(method: string, path: string, body?: unknown, o: HttpOptions = {}): Promise<HttpReply<T>> {
    const headers: Record<string, string> = { ...o.headers };
    const tok = o.token === undefined ? defaultToken : o.token;
    if (tok) headers.authorization = `Bearer ${tok}`;
    if (body !== undefined || o.raw !== undefined) headers["content-type"] ??= "application/json";
    const res = await fetch(baseUrl + path, { method, headers, body: o.raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
}
