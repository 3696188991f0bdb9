import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./process";
import { waitFor } from "./wait";

/**
 * A user's own BullMQ worker: a plain `node` process running `script` as `worker.cjs` in `dir`
 * (CommonJS: Node's ESM loader refuses BullMQ's ESM directory imports), with this checkout's
 * node_modules. The script prints one JSON object per line: `{ "ready": true }` once its Worker is
 * ready, and what it saw, each pushed onto `messages`. Resolves with the process once it is ready.
 */
export async function startNodeWorker<M>(opts: { dir: string; script: string; env: Record<string, string>; messages: M[]; readyMs?: number }) {
  writeFileSync(join(opts.dir, "worker.cjs"), opts.script);
  const proc = Bun.spawn(["node", join(opts.dir, "worker.cjs")], {
    cwd: opts.dir,
    env: { PATH: process.env.PATH ?? "", NODE_PATH: join(REPO, "node_modules"), ...opts.env },
    stdout: "pipe",
    stderr: "inherit",
  });
  let ready = false;
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.ready) ready = true;
        else opts.messages.push(msg);
      }
    }
  })();
  await waitFor(() => ready, opts.readyMs ?? 15_000, "the node worker to be ready");
  return proc;
}
