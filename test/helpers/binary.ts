import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./process";

/**
 * Puts a flowd binary at `target`: FLOWD_BIN when set (CI builds it once), otherwise one built now
 * with package.json's own build command (its flags are what is being tested), into `target` itself
 * so a shared dist/flowd is left alone.
 */
export function prepareBinary(target: string) {
  if (process.env.FLOWD_BIN) {
    copyFileSync(process.env.FLOWD_BIN, target);
  } else {
    const script: string = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).scripts.build;
    const args = script.replace(/--outfile\s+\S+/, "").trim().split(/\s+/);
    const build = Bun.spawnSync([...args, "--outfile", target], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  }
  Bun.spawnSync(["chmod", "+x", target]);
}
