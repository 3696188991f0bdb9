import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/log";
import { startApi } from "../../src/api/start";
import { prepareBinary } from "../helpers/binary";
import { spawnFlowd } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * `flowd flows watch` and `flowd run --watch` from the compiled binary: JSON lines against the
 * event log, an API restart in the middle of a flow, and the live frame in a real terminal (tmux).
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-watch-"));
const bin = join(dir, "flowd");
const tmuxSocket = `flowd-cli-test-${process.pid}`;
let stack: Stack;

beforeAll(async () => {
  prepareBinary(bin);
  stack = await startStack({ workers: 1, tag: "watch" });
}, 180_000);
afterAll(async () => {
  Bun.spawnSync(["tmux", "-L", tmuxSocket, "kill-server"], { stderr: "ignore" });
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const clientEnv = () => ({ XDG_CONFIG_HOME: join(dir, "config"), FLOWD_URL: stack.baseUrl, FLOWD_TOKEN: stack.token });

/** A tree whose leaves sleep, so the flow runs for a few seconds. */
const tree = (name: string, ms: number, fail = false) => ({
  name,
  root: {
    name: "echo",
    children: [
      { name: "echo", children: [{ name: "sleep", data: { ms } }, { name: "sleep", data: { ms: ms * 2 } }] },
      { name: "sleep", data: { ms: ms * 3 } },
      fail ? { name: "fail", data: { message: "the disk is full" }, opts: { attempts: 1 } } : { name: "echo", data: { ok: true } },
    ],
  },
});

const eventSeqs = async (flowId: string) =>
  (await stack.database.sql<{ seq: number }[]>`select seq::int as seq from events where flow_id = ${flowId} order by seq`).map((r) => r.seq);

describe("flows watch --json", () => {
  test("JSON lines: the snapshot, every event in seq order, the final flow; exit 0 when it completes", async () => {
    const flow = (await stack.http("POST", "/v1/flows", tree("watch-json", 300))).body;
    const w = spawnFlowd(["flows", "watch", flow.id, "--json"], clientEnv(), { bin });
    const code = await w.proc.exited;
    await Bun.sleep(50);
    expect(w.stderr()).toBe("");
    expect(code).toBe(0);
    const lines = w.lines.filter(Boolean).map((l) => JSON.parse(l));
    expect(lines[0].type).toBe("snapshot");
    expect(lines.at(-1)).toMatchObject({ type: "flow", flow: { id: flow.id, status: "completed" } });
    expect(lines.at(-1).flow).toEqual((await stack.http("GET", `/v1/flows/${flow.id}`)).body);
    const seqs = lines.filter((l) => l.type === "event").map((l) => l.seq as number);
    expect(seqs.length).toBeGreaterThan(0);
    const logged = await eventSeqs(flow.id);
    expect(seqs).toEqual(logged.filter((s) => s >= seqs[0]!));
  }, 60_000);

  test("exit 1 when the flow fails, with the failed job's error in the final flow", async () => {
    const flow = (await stack.http("POST", "/v1/flows", tree("watch-fail", 100, true))).body;
    const w = spawnFlowd(["flows", "watch", flow.id, "--json"], clientEnv(), { bin });
    expect(await w.proc.exited).toBe(1);
    const last = JSON.parse(w.lines.filter(Boolean).at(-1)!);
    expect(last.flow.status).toBe("failed");
    expect(JSON.stringify(last.flow)).toContain("the disk is full");
  }, 60_000);

  test("an unknown flow: one line, exit 1", async () => {
    const w = spawnFlowd(["flows", "watch", "cnosuchflowxxxxxxxxxxxxxx"], clientEnv(), { bin });
    expect(await w.proc.exited).toBe(1);
    expect(w.stderr()).toContain("No flow with id");
  });

  test("survives the API restarting mid-flow and misses no event", async () => {
    const flow = (await stack.http("POST", "/v1/flows", tree("watch-restart", 1500))).body;
    const w = spawnFlowd(["flows", "watch", flow.id, "--json"], clientEnv(), { bin });
    await w.waitForLine(/"type":"snapshot"/);
    const port = stack.api.app.server!.port;
    await stack.api.stop();
    // Work goes on while the API is down: the worker records it, and the log keeps the events.
    const before = (await eventSeqs(flow.id)).length;
    await waitFor(async () => (await eventSeqs(flow.id)).length > before, 20_000, "an event while the API is down");
    const api = await startApi({ config: loadConfig({ ...stack.env, PORT: String(port) }), database: stack.database, log: createLogger("silent") });
    stack.api.stop = api.stop;
    const code = await w.proc.exited;
    await Bun.sleep(50);
    expect(code).toBe(0);
    const lines = w.lines.filter(Boolean).map((l) => JSON.parse(l));
    expect(lines.at(-1).flow.status).toBe("completed");
    const seqs = lines.filter((l) => l.type === "event").map((l) => l.seq as number);
    expect(seqs).toEqual((await eventSeqs(flow.id)).filter((s) => s >= seqs[0]!));
  }, 90_000);
});

describe("run --watch in a terminal (tmux)", () => {
  const tmux = (...args: string[]) => Bun.spawnSync(["tmux", "-L", tmuxSocket, ...args], { stdout: "pipe", stderr: "pipe" });
  const capture = (session: string) => tmux("capture-pane", "-p", "-t", session).stdout.toString();

  async function watchInTmux(session: string, body: unknown) {
    const file = join(dir, `${session}.json`);
    writeFileSync(file, JSON.stringify(body));
    const env = Object.entries(clientEnv()).map(([k, v]) => `${k}=${v}`);
    const command = `env -u NO_COLOR ${env.join(" ")} TERM=xterm-256color ${bin} run ${file} --watch; echo "EXIT=$?"; sleep 600`;
    expect(tmux("new-session", "-d", "-s", session, "-x", "110", "-y", "40", command).exitCode).toBe(0);
    let live = "";
    const screen: string = await waitFor(
      (): string | undefined => {
        const text = capture(session);
        // A frame in the middle of the flow: the bar has started but not finished.
        if (!live && /\] [1-9]\d*\/\d+ jobs/.test(text) && !/EXIT=/.test(text)) live = text;
        return /EXIT=\d/.test(text) ? text : undefined;
      },
      60_000,
      "the watch to end",
      100,
    );
    tmux("kill-session", "-t", session);
    return { live, screen, exit: Number(/EXIT=(\d+)/.exec(screen)![1]) };
  }

  test("shows the live tree and progress bar, exits 0 when the flow completes", async () => {
    const { live, screen, exit } = await watchInTmux("ok", tree("tmux-ok", 800));
    writeFileSync("/tmp/cli-watch.txt", `--- while running ---\n${live}\n--- at the end ---\n${screen}`);
    expect(exit).toBe(0);
    expect(live).toContain("└─");
    expect(live).toMatch(/\[[█░]+\] \d+\/6 jobs/);
    expect(screen).toContain("6/6 jobs  100%");
    expect(screen).toContain("jobs/s");
    expect(screen).toContain("elapsed");
    expect(screen).toMatch(/flow c[0-9a-z]{24}  tmux-ok  completed/);
    // Redrawn in place: one header, one bar on the screen.
    expect(screen.match(/tmux-ok/g)).toHaveLength(1);
    expect(screen.match(/jobs\/s/g)).toHaveLength(1);
  }, 90_000);

  test("shows the failed job's error, exits 1 when the flow fails", async () => {
    const { screen, exit } = await watchInTmux("failed", tree("tmux-fail", 300, true));
    writeFileSync("/tmp/cli-watch-failed.txt", screen);
    expect(exit).toBe(1);
    expect(screen).toContain("the disk is full");
    expect(screen).toMatch(/tmux-fail  failed/);
  }, 90_000);

  test("a bulk action asks for confirmation with the count on a terminal; colours there, none with NO_COLOR", async () => {
    const ids = await Promise.all([1, 2].map(async (i) => (await stack.http("POST", "/v1/flows", { name: `confirm-${i}`, root: { name: "fail", opts: { attempts: 1 } } })).body.id));
    await waitFor(
      async () => Number((await stack.database.sql`select count(*)::int as n from flows where id = any(${ids}) and status = 'failed'`)[0]!.n) === 2,
      20_000,
      "flows failed",
    );
    const env = Object.entries(clientEnv()).map(([k, v]) => `${k}=${v}`).join(" ");
    const command = `env -u NO_COLOR ${env} TERM=xterm-256color ${bin} flows retry --status failed --name confirm-; echo "EXIT=$?"; sleep 600`;
    expect(tmux("new-session", "-d", "-s", "confirm", "-x", "110", "-y", "20", command).exitCode).toBe(0);
    await waitFor(() => capture("confirm").includes("Retry 2 flows? [y/N]"), 20_000, "the confirmation");
    tmux("send-keys", "-t", "confirm", "y", "Enter");
    const screen = await waitFor(() => (/EXIT=\d/.test(capture("confirm")) ? capture("confirm") : undefined), 30_000, "the bulk retry to end");
    const coloured = tmux("capture-pane", "-p", "-e", "-t", "confirm").stdout.toString();
    tmux("kill-session", "-t", "confirm");
    writeFileSync("/tmp/cli-confirm.txt", screen);
    expect(screen).toContain("EXIT=0");
    expect(screen).toMatch(/matched 2 {2}done 2 {2}skipped 0 {2}failed 0/);
    expect(coloured).toContain("\x1b[");
    const plain = `NO_COLOR=1 ${env} TERM=xterm-256color ${bin} flows list --name confirm-; echo "EXIT=$?"; sleep 600`;
    expect(tmux("new-session", "-d", "-s", "plain", "-x", "110", "-y", "20", plain).exitCode).toBe(0);
    await waitFor(() => capture("plain").includes("EXIT="), 20_000, "the list");
    const raw = tmux("capture-pane", "-p", "-e", "-t", "plain").stdout.toString();
    tmux("kill-session", "-t", "plain");
    expect(raw).toContain("confirm-1");
    expect(raw).not.toContain("\x1b[");
  }, 90_000);
});
