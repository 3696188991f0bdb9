import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startCluster, type Cluster } from "../helpers/cluster";
import { connectWs } from "../helpers/ws-client";

// An API process with a small per-socket buffer, a worker, and a client that stops reading.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "slow", env: { FLOWD_SOCKET_BUFFER_LIMIT: String(64 * 1024) } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

describe("a socket that stops reading", () => {
  test("is cut off once its queue passes the limit, and the server's memory stays bounded", async () => {
    const api = cluster.apis[0]!;
    const { hostname, port } = new URL(api.url);
    const stalled = Bun.spawn(["python3", join(import.meta.dir, "../fixtures/stalled-ws-client.py"), hostname, port, cluster.token], {
      stdin: "pipe",
      stdout: "pipe",
    });
    const reader = stalled.stdout.getReader();
    const decoder = new TextDecoder();
    let out = "";
    /** The client's output once it holds one of `words` (or it exited). */
    const until = async (...words: string[]) => {
      while (!words.some((w) => out.includes(w))) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
      }
      return out;
    };
    expect(await until("READY")).toContain("READY");

    // A healthy client alongside must keep receiving everything.
    const healthy = await connectWs(api.wsUrl, cluster.token);
    healthy.send({ op: "subscribe", all: true });
    await healthy.next((m) => m.type === "subscribed");

    const before = rssMiB(api.proc.proc.pid);
    // Fat events (each completed job's result carries ~3 KB), a few MB in all: far past the limit
    // and the kernel's socket buffers.
    const blob = "x".repeat(3000);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await api.http("POST", "/v1/flows", {
        name: `burst ${i}`,
        root: { name: "echo", children: Array.from({ length: 300 }, (_, j) => ({ name: "echo", data: { j, blob } })) },
      });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    for (const id of ids) await healthy.next((m) => m.type === "event" && m.event === "flow.completed" && m.flowId === id, 60_000);
    const after = rssMiB(api.proc.proc.pid);

    stalled.stdin.write("drain\n");
    stalled.stdin.flush();
    expect(await until("CLOSED_BY_SERVER", "STILL_OPEN")).toContain("CLOSED_BY_SERVER");
    await stalled.exited;
    // Several MB went to the stalled socket's topic; the server held at most its limit for it.
    expect(after - before).toBeLessThan(64);
    // The healthy client got every event, in order.
    const seqs = healthy.messages.filter((m) => m.type === "event").map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    healthy.close();
  }, 120_000);
});
