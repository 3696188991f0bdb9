/**
 * Run by fallback.test.ts inside a network namespace of its own (`unshare -n`), where nothing
 * listens: plain `flowd`, with DATABASE_URL and REDIS_URL unset, must find nothing at
 * 127.0.0.1:5432 and run as flowd dev. It creates a flow, watches it complete on a socket,
 * restarts, and finds it still there. Prints one JSON line with what it saw.
 * Nothing answers at Redis's default address either: flowd dev runs its queues on BullMQ's
 * Postgres backend, so the whole run needs nothing installed.
 */
import { spawnFlowd } from "../helpers/process";
import { httpClient } from "../helpers/http";
import { connectWs } from "../helpers/ws-client";
import { connect } from "node:net";

const [dataDir, cwd] = process.argv.slice(2);
if (!dataDir || !cwd) throw new Error("usage: fallback-driver.ts DATA_DIR CWD");

Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

const report: Record<string, unknown> = { postgresAnswered: await answers(5432), redisAnswered: await answers(6379) };
const env = { FLOWD_DATA_DIR: dataDir, FLOWD_EMBEDDED_POSTGRES_PORT: "15432", PORT: "3000", LOG_LEVEL: "info" };

async function start() {
  const proc = spawnFlowd([], env, { cwd });
  await proc.waitForLine(/^Ctrl-C stops flowd/, 120_000);
  const field = (name: string) => proc.lines.find((l) => l.startsWith(`  ${name}:`))!.slice(`  ${name}:`.length).trim();
  return { proc, token: field("Token"), api: field("API") };
}

try {
  const first = await start();
  report.fallbackLine = first.proc.lines.find((l) => l.includes("nothing answers at 127.0.0.1:5432")) ?? null;
  const http = httpClient(first.api, first.token);
  const socket = await connectWs(first.api.replace("http", "ws") + "/v1/ws", first.token);
  socket.send({ op: "subscribe", all: true });
  await socket.next((m) => m.type === "subscribed", 20_000);
  const flow = await http("POST", "/v1/flows", { name: "netns", root: { name: "echo", data: {}, children: [{ name: "echo", data: { n: 1 } }] } });
  report.created = flow.status;
  const done = await socket.next((m) => m.type === "event" && m.event === "flow.completed" && m.flowId === flow.body.id, 60_000);
  report.socketSawCompleted = done.flowId === flow.body.id;
  socket.close();
  report.firstExit = await first.proc.stop("SIGTERM", 60_000);

  const second = await start();
  report.sameToken = second.token === first.token;
  report.afterRestart = (await httpClient(second.api, second.token)("GET", `/v1/flows/${flow.body.id}`)).body.status;
  report.secondExit = await second.proc.stop("SIGTERM", 60_000);
  report.postgresPortFreeAfter = !(await answers(15432));
} catch (err) {
  report.error = String((err as Error).stack ?? err);
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
