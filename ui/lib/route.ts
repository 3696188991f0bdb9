/**
 * Pages live in the URL's hash (`#/flows/<id>`), so the server serves one document at /ui and a
 * reload or a shared link opens the same page.
 */
export type Route =
  | { page: "overview" }
  | { page: "flows"; status?: string; name?: string; data?: string }
  | { page: "flow"; id: string }
  | { page: "jobs"; status?: string; name?: string; data?: string }
  | { page: "job"; id: string }
  | { page: "schedules" }
  | { page: "webhooks" }
  | { page: "handlers" }
  | { page: "approvals" }
  | { page: "operations" }
  | { page: "definitions"; event?: string }
  | { page: "definition"; name: string; version?: string }
  | { page: "missing"; path: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [path = "/", search = ""] = raw.split("?", 2);
  const q = new URLSearchParams(search);
  const filters = () => ({
    status: q.get("status") ?? undefined,
    name: q.get("name") ?? undefined,
    data: q.get("data") ?? undefined,
  });
  const parts = decodedParts(path);
  // A malformed escape (`#/flows/%`, typed or pasted) names no page; decodeURIComponent throws on it,
  // and a throw here, while rendering, left the whole dashboard blank.
  if (parts === null) return { page: "missing", path };
  if (parts.length === 0) return { page: "overview" };
  const [head, id] = parts;
  if (head === "flows" && parts.length === 1) return { page: "flows", ...filters() };
  if (head === "flows" && id && parts.length === 2) return { page: "flow", id };
  if (head === "jobs" && parts.length === 1) return { page: "jobs", ...filters() };
  if (head === "jobs" && id && parts.length === 2) return { page: "job", id };
  if (head === "schedules" && parts.length === 1) return { page: "schedules" };
  if (head === "webhooks" && parts.length === 1) return { page: "webhooks" };
  if (head === "handlers" && parts.length === 1) return { page: "handlers" };
  if (head === "approvals" && parts.length === 1) return { page: "approvals" };
  if (head === "operations" && parts.length === 1) return { page: "operations" };
  if (head === "definitions" && parts.length === 1) return { page: "definitions", event: q.get("event") ?? undefined };
  if (head === "definitions" && id && parts.length === 2) return { page: "definition", name: id, version: q.get("version") ?? undefined };
  return { page: "missing", path };
}

function decodedParts(path: string): string[] | null {
  try {
    return path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return null;
  }
}

export function href(route: Route): string {
  const q = (r: { status?: string; name?: string; data?: string }) => {
    const p = new URLSearchParams();
    for (const k of ["status", "name", "data"] as const) if (r[k]) p.set(k, r[k]!);
    const s = p.toString();
    return s ? `?${s}` : "";
  };
  switch (route.page) {
    case "overview":
      return "#/";
    case "flows":
      return `#/flows${q(route)}`;
    case "flow":
      return `#/flows/${encodeURIComponent(route.id)}`;
    case "jobs":
      return `#/jobs${q(route)}`;
    case "job":
      return `#/jobs/${encodeURIComponent(route.id)}`;
    case "schedules":
      return "#/schedules";
    case "webhooks":
      return "#/webhooks";
    case "handlers":
      return "#/handlers";
    case "approvals":
      return "#/approvals";
    case "operations":
      return "#/operations";
    case "definitions":
      return `#/definitions${route.event ? `?event=${encodeURIComponent(route.event)}` : ""}`;
    case "definition":
      return `#/definitions/${encodeURIComponent(route.name)}${route.version ? `?version=${encodeURIComponent(route.version)}` : ""}`;
    case "missing":
      return `#${route.path}`;
  }
}
