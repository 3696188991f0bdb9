import "../src/runtime-shims";
/** `bun run bench`: every benchmark, each printing its conditions and its ratio to a baseline run alongside. */
import { benchFlows } from "./flows";
import { benchEvents } from "./events";
import { benchJobs } from "./jobs";
import { benchWebhooks } from "./webhooks";
import { benchHandlers } from "./handlers";
import { benchHttpTasks } from "./http-tasks";
import { benchCluster } from "./cluster";
import { benchFlowPage, benchGraphPage } from "./flow-page";

const only = process.argv[2];
if (!only || only === "flows") await benchFlows();
if (!only || only === "events") await benchEvents();
if (!only || only === "jobs") await benchJobs();
if (!only || only === "webhooks") await benchWebhooks();
if (!only || only === "handlers") await benchHandlers();
if (!only || only === "http-tasks") await benchHttpTasks();
if (!only || only === "cluster") await benchCluster();
if (!only || only === "flow-page") await benchFlowPage();
if (only === "waits") await (await import("./waits")).benchWaits();
if (!only || only === "graph-page") await benchGraphPage();
if (only === "graphs") await import("./graphs");
if (only === "definitions") await import("./definitions");
if (only === "limits") await (await import("./limits")).benchLimits();
if (only === "backends") await (await import("./backends")).benchBackends();
if (only === "peers") await (await import("./peers")).benchPeers();
process.exit(0);
