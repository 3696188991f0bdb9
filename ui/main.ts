import { render } from "preact";
import { html } from "./lib/html";
import { App } from "./app";
import { serveLayouts } from "./lib/layout-worker";

// The same bundle runs as the page and as its layout worker (lib/layout-worker.ts).
if (typeof document === "undefined") serveLayouts(self as never);
else render(html`<${App} />`, document.getElementById("app")!);
