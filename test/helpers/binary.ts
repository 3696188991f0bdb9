import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "./process";

/**
 * Puts a flowd binary at `target`: FLOWD_BIN when set (CI builds it once), otherwise one built now
 * with package.json's own build command (its flags are what is being tested), so a shared
 * dist/flowd is left alone.
 */
export function prepareBinary(target: string) {
  if (process.env.FLOWD_BIN) {
    copyFileSync(process.env.FLOWD_BIN, target);
  } else {
    const script: string = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).scripts.build;
    const args = script.replace(/--outfile\s+\S+/, "").trim().split(/\s+/);
    // The build writes its source maps beside the binary; only the binary goes to `target`.
    const out = mkdtempSync(join(tmpdir(), "flowd-build-"));
    const build = Bun.spawnSync([...args, "--outfile", join(out, "flowd")], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
    copyFileSync(join(out, "flowd"), target);
    rmSync(out, { recursive: true, force: true });
  }
  Bun.spawnSync(["chmod", "+x", target]);
}
