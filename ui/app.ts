import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError, clearToken, getToken, onUnauthorized, setToken } from "./lib/api";
import { html } from "./lib/html";
import { LiveContext, useConnectionState } from "./lib/context";
import { LiveSocket, socketUrl, type ConnectionState } from "./lib/live";
import { href, parseRoute, type Route } from "./lib/route";
import { Overview } from "./pages/overview";
import { Flows } from "./pages/flows";
import { Flow } from "./pages/flow";
import { JobPage, Jobs } from "./pages/jobs";
import { Schedules } from "./pages/schedules";
import { Webhooks } from "./pages/webhooks";
import { Handlers } from "./pages/handlers";
import { Approvals } from "./pages/approvals";
import { Operations } from "./pages/operations";
import { Definition, Definitions } from "./pages/definitions";

const useRoute = () => {
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
};

export function App() {
  const [token, setTok] = useState<string | null>(getToken());
  const [notice, setNotice] = useState<string | null>(null);
  const signOut = (why?: string) => {
    clearToken();
    setTok(null);
    setNotice(why ?? null);
  };
  useEffect(() => onUnauthorized(() => signOut("Your token is no longer accepted; sign in again.")) as () => void, []);
  if (!token) return html`<${SignIn} notice=${notice} onSignedIn=${(t: string) => (setToken(t), setNotice(null), setTok(t))} />`;
  return html`<${SignedIn} token=${token} onSignOut=${() => signOut("You are signed out.")} />`;
}

function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (t: string) => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) return setError("Paste an API token first.");
    setBusy(true);
    try {
      // Any authenticated read tells whether the token is good; the overview needs this one anyway.
      await api("GET", "/v1/stats?window=1m", undefined, t);
      onSignedIn(t);
    } catch (err) {
      const e = err as ApiError;
      setError(e.status === 401 ? "That token is not valid: it is unknown or revoked." : e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <form onSubmit=${submit} aria-labelledby="h-signin" class="card form">
      <h1 id="h-signin">Sign in to flowd</h1>
      ${notice && html`<p role="status">${notice}</p>`}
      <label>API token
        <input type="password" autocomplete="off" value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
          aria-invalid=${error ? "true" : "false"} aria-describedby="signin-help" autofocus />
      </label>
      <p id="signin-help" class="hint">Create one with <code>flowd token create --user NAME</code>. It is kept in this tab only (session storage).</p>
      ${error && html`<p class="error-note" role="alert">${error}</p>`}
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>
  </main>`;
}

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function Connection() {
  const state = useConnectionState();
  return html`<p class=${`conn conn-${state}`} role="status" aria-live="polite" data-connection=${state}>
    <span class="dot" aria-hidden="true"></span>${STATE_TEXT[state]}
  </p>`;
}

const NAV: { label: string; route: Route; match: Route["page"][] }[] = [
  { label: "Overview", route: { page: "overview" }, match: ["overview"] },
  { label: "Flows", route: { page: "flows" }, match: ["flows", "flow"] },
  { label: "Jobs", route: { page: "jobs" }, match: ["jobs", "job"] },
  { label: "Definitions", route: { page: "definitions" }, match: ["definitions", "definition"] },
  { label: "Schedules", route: { page: "schedules" }, match: ["schedules"] },
  { label: "Webhooks", route: { page: "webhooks" }, match: ["webhooks"] },
  { label: "Handlers", route: { page: "handlers" }, match: ["handlers"] },
  { label: "Approvals", route: { page: "approvals" }, match: ["approvals"] },
  { label: "Operations", route: { page: "operations" }, match: ["operations"] },
];

function SignedIn({ token, onSignOut }: { token: string; onSignOut: () => void }) {
  const live = useMemo(() => new LiveSocket(() => socketUrl(), () => token), [token]);
  useEffect(() => () => live.close(), [live]);
  const route = useRoute();
  useEffect(() => {
    const main = document.getElementById("main");
    main?.focus({ preventScroll: true });
  }, [route.page, "id" in route ? route.id : ""]);
  return html`<${LiveContext.Provider} value=${live}>
    <a class="skip" href="#main" onClick=${(e: Event) => (e.preventDefault(), document.getElementById("main")?.focus())}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">flowd</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.map(
            (n) => html`<li key=${n.label}><a href=${href(n.route)} aria-current=${n.match.includes(route.page) ? "page" : undefined}>${n.label}</a></li>`,
          )}
        </ul>
      </nav>
      <${Connection} />
      <button type="button" class="signout" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${page(route)}</main>
  </${LiveContext.Provider}>`;
}

function page(route: Route) {
  switch (route.page) {
    case "overview":
      return html`<${Overview} />`;
    case "flows":
      return html`<${Flows} filters=${{ status: route.status, name: route.name, data: route.data }} key=${"flows"} />`;
    case "flow":
      return html`<${Flow} id=${route.id} key=${route.id} />`;
    case "jobs":
      return html`<${Jobs} filters=${{ status: route.status, name: route.name, data: route.data }} key=${"jobs"} />`;
    case "job":
      return html`<${JobPage} id=${route.id} key=${route.id} />`;
    case "schedules":
      return html`<${Schedules} />`;
    case "webhooks":
      return html`<${Webhooks} />`;
    case "handlers":
      return html`<${Handlers} />`;
    case "approvals":
      return html`<${Approvals} />`;
    case "operations":
      return html`<${Operations} />`;
    case "definitions":
      return html`<${Definitions} event=${route.event} />`;
    case "definition":
      return html`<${Definition} name=${route.name} version=${route.version} key=${route.name} />`;
    case "missing":
      return html`<section><h1>Page not found</h1><p>Nothing lives at <code>${route.path}</code>. <a href="#/">Go to the overview</a>.</p></section>`;
  }
}
