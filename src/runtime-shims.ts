import diagnostics from "node:diagnostics_channel";

/**
 * Bun 1.4's TracingChannel has no `hasSubscribers` (Node 22 added it). ioredis reads it before every
 * command and treats `undefined` as "someone listens", so it traced every command for nobody:
 * 3–4% of a process's CPU. The getter answers as Node does: true when any of its channels has one.
 */
const proto = Object.getPrototypeOf(diagnostics.tracingChannel("flowd:probe")) as object;
if (!("hasSubscribers" in proto)) {
  Object.defineProperty(proto, "hasSubscribers", {
    get(this: Record<string, { hasSubscribers?: boolean } | undefined>) {
      return ["start", "end", "asyncStart", "asyncEnd", "error"].some((k) => this[k]?.hasSubscribers === true);
    },
  });
}
