/** `promtool check metrics` on a scrape: its exit code and whatever it says (nothing when clean). */
export async function promtool(text: string) {
  if (!Bun.which("promtool")) throw new Error("promtool is missing: apt-get install -y prometheus (.ci/run installs it)");
  const proc = Bun.spawn(["promtool", "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, output: (out + err).trim() };
}
