/**
 * Values that JSON can carry but flowd cannot keep: Postgres text and jsonb refuse the NUL
 * character and unpaired UTF-16 surrogates (JSON.stringify writes them as `\ud800`, which jsonb
 * rejects), and a number beyond ±1.8e308 parses to Infinity, which JSON.stringify turns into null
 * without a word. Found here, at the door, they are a 400 naming the place; found by Postgres they
 * were a 500 that logged the user's data.
 */
export type Unstorable = { path: string; problem: "nul" | "surrogate" | "not_finite" };

/** ES2024's String.prototype.isWellFormed (native in Bun; the project's TypeScript lib predates it). */
const isWellFormed = (s: string) => (s as string & { isWellFormed(): boolean }).isWellFormed();

const problemOf = (s: string): Unstorable["problem"] | undefined =>
  s.includes("\0") ? "nul" : isWellFormed(s) ? undefined : "surrogate";

/** JSON Pointer segments, each shortened: the path goes back to the client and into logs. */
const pointer = (segments: (string | number)[]) => {
  const path = segments.map((s) => "/" + String(s).slice(0, 64).replaceAll("~", "~0").replaceAll("/", "~1")).join("");
  return path.length > 300 ? path.slice(0, 300) + "…" : path || "/";
};

type Frame = { node: Record<string, unknown> | unknown[]; keys: string[] | null; next: number };

/**
 * Whether anything in `root` is unstorable: the quick pass every clean body takes. Iterative, so
 * that a deeply nested body (JSON.parse accepts a million `[`) cannot overflow the stack.
 */
function hasUnstorable(root: unknown): boolean {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === "string") {
      if (problemOf(value)) return true;
    } else if (typeof value === "number") {
      if (!Number.isFinite(value)) return true;
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) pending.push(value[i]);
    } else if (typeof value === "object" && value !== null) {
      for (const key in value) {
        if (problemOf(key)) return true;
        pending.push((value as Record<string, unknown>)[key]);
      }
    }
  }
  return false;
}

/**
 * The first unstorable string (key or value) or number in `root`, depth first, or undefined.
 * A clean body costs one quick pass, about what JSON.parse of it costs (≈1.5 ms for a 1 MiB flow
 * of small objects, ≈0.01 ms for a 1 MiB string, on Bun 1.4); only a refused one is walked again
 * to say where.
 */
export function findUnstorable(root: unknown): Unstorable | undefined {
  if (!hasUnstorable(root)) return undefined;
  const stack: Frame[] = [];
  const here = () => pointer(stack.map((f) => (f.keys ? f.keys[f.next - 1]! : f.next - 1)));
  const visit = (value: unknown): Unstorable["problem"] | undefined => {
    if (typeof value === "string") return problemOf(value);
    if (typeof value === "number") return Number.isFinite(value) ? undefined : "not_finite";
    if (typeof value === "object" && value !== null)
      stack.push({ node: value as Frame["node"], keys: Array.isArray(value) ? null : Object.keys(value), next: 0 });
    return undefined;
  };
  const top = visit(root);
  if (top) return { path: "/", problem: top };
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const size = frame.keys ? frame.keys.length : (frame.node as unknown[]).length;
    if (frame.next >= size) {
      stack.pop();
      continue;
    }
    const key = frame.keys ? frame.keys[frame.next]! : frame.next;
    frame.next++;
    if (typeof key === "string") {
      const keyProblem = problemOf(key);
      if (keyProblem) return { path: here(), problem: keyProblem };
    }
    // Only strings and numbers have problems, and visit() pushes neither: the path is this frame's.
    const problem = visit((frame.node as Record<string | number, unknown>)[key]);
    if (problem) return { path: here(), problem };
  }
  return undefined;
}

/** What is wrong, for an error's `details`. */
export const UNSTORABLE: { [problem in Unstorable["problem"]]: string } = {
  nul: "must not contain the NUL character (\\u0000)",
  surrogate: "must not hold an unpaired UTF-16 surrogate",
  not_finite: "must lie within ±1.7976931348623157e308",
};

/** The sentence a client reads for `u`. */
export function describeUnstorable(u: Unstorable): string {
  switch (u.problem) {
    case "nul":
      return `Strings may not contain the NUL character (\\u0000); one does at ${u.path}.`;
    case "surrogate":
      return `The string at ${u.path} holds an unpaired UTF-16 surrogate (such as \\ud800 without its partner); send well-formed Unicode.`;
    case "not_finite":
      return `The number at ${u.path} is too large to keep (JSON numbers here must lie within ±1.7976931348623157e308); send it as a string.`;
  }
}
