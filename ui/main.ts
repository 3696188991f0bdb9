import { render } from "preact";
import { html } from "./lib/html";
import { App } from "./app";

render(html`<${App} />`, document.getElementById("app")!);
