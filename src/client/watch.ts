/**
 * `flowd flows watch ID`: the flow as GET shows it, kept live from the socket. The subscription
 * is in place before the flow is read, so no change falls between the two; each event's `seq` is
 * remembered, and after a dropped connection (an API restart) the watch resubscribes with
 * `after` = that seq and misses nothing (or reads the flow afresh when the log no longer reaches
 * back). Ends when the flow does: 0 completed, 1 failed or cancelled.
 */
import { ClientError, socketUrl, type Api } from "./api";
import { flowFrame, isFinishedStatus, jobsOf, type FlowLike, type JobLike } from "./render";
import type { Io, Palette } from "./output";

type Event = { type: "event"; event: string; seq: number; flowId?: string; jobId?: string; status?: string; data?: any };

export async function watchFlow(api: Api, id: string, io: Io, p: Palette, json: boolean): Promise<number> {
  const started = Date.now();
  let flow: FlowLike | undefined;
  let flowStatus = "running";
  let lastSeq: number | undefined;
  const statuses = new Map<string, string>();
  const errors = new Map<string, JobLike["error"]>();
  const byJobId = new Map<string, string>();
  let note: string | undefined;
  let lastLines = 0;
  let renderTimer: ReturnType<typeof setTimeout> | undefined;

  const statusOf = (j: JobLike) => statuses.get(j.id) ?? j.status;
  const errorOf = (j: JobLike) => errors.get(j.id) ?? j.error ?? null;
  const elapsed = () => {
    const from = flow ? Date.parse(flow.createdAt) : started;
    const to = flow?.finishedAt && isFinishedStatus(flowStatus) ? Date.parse(flow.finishedAt) : Date.now();
    return Math.max(0, to - from);
  };

  function adopt(view: FlowLike) {
    flow = view;
    flowStatus = view.status;
    statuses.clear();
    errors.clear();
    for (const j of jobsOf(view)) byJobId.set(j.jobId, j.id);
  }

  function render(final = false) {
    if (json || !flow) return;
    if (!io.isTty) {
      if (final) io.out(flowFrame(flow, { statusOf, errorOf, flowStatus, elapsedMs: elapsed() }, p).join("\n") + "\n");
      return;
    }
    const rows = io.rows ?? 40;
    const lines = flowFrame(flow, { statusOf, errorOf, flowStatus, elapsedMs: elapsed(), note }, p, Math.max(3, rows - 16));
    const clear = lastLines > 0 ? `\x1b[${lastLines}A\r\x1b[J` : "";
    io.out(clear + lines.join("\n") + "\n");
    lastLines = lines.length;
  }
  const scheduleRender = () => {
    if (renderTimer || json) return;
    renderTimer = setTimeout(() => {
      renderTimer = undefined;
      render();
    }, 80);
  };
  const ticker = io.isTty && !json ? setInterval(scheduleRender, 500) : undefined;

  function apply(e: Event) {
    if (lastSeq !== undefined && e.seq <= lastSeq) return;
    lastSeq = e.seq;
    if (json) io.out(JSON.stringify(e) + "\n");
    if (e.event === "job.updated" && e.status) {
      const rowId = e.data?.id ?? (e.jobId ? byJobId.get(e.jobId) ?? e.jobId : undefined);
      if (rowId) {
        statuses.set(rowId, e.status);
        if (e.data?.error) errors.set(rowId, e.data.error);
        else if (e.status !== "failed") errors.delete(rowId);
      }
    } else if (e.event.startsWith("flow.") && e.status) {
      flowStatus = e.status;
    }
    scheduleRender();
  }

  const load = async () => adopt(await api.request<FlowLike>("GET", `/v1/flows/${encodeURIComponent(id)}`));

  // Reachable, the token good, the flow there: each is one clear line before any socket is opened.
  await load();
  try {
    let backoff = 250;
    for (;;) {
      const outcome = await session();
      if (outcome === "finished") break;
      note = "reconnecting…";
      scheduleRender();
      await Bun.sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
      // A flow deleted meanwhile, or the token revoked: the GET says so, and the watch ends.
      if (outcome === "resync" || lastSeq === undefined) await load().catch((err) => {
        if (err instanceof ClientError && err.status !== undefined && err.status < 500) throw err;
      });
    }
    // The final state with every job's result and error.
    await load();
    if (renderTimer) clearTimeout(renderTimer);
    note = undefined;
    if (json) io.out(JSON.stringify({ type: "flow", flow }) + "\n");
    else render(true);
    return flowStatus === "completed" ? 0 : 1;
  } finally {
    if (ticker) clearInterval(ticker);
    if (renderTimer) clearTimeout(renderTimer);
  }

  /** One connection: "finished" when the flow ended, "dropped" / "resync" to connect again. */
  function session(): Promise<"finished" | "dropped" | "resync"> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (r: "finished" | "dropped" | "resync") => {
        if (settled) return;
        settled = true;
        try {
          ws.close();
        } catch {}
        resolve(r);
      };
      const ws = new WebSocket(socketUrl(api.url), { headers: { authorization: `Bearer ${api.token}` } } as any);
      ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", flowId: id, ...(lastSeq !== undefined ? { after: lastSeq } : {}) }));
      ws.onmessage = async (m) => {
        let msg: any;
        try {
          msg = JSON.parse(String(m.data));
        } catch {
          return;
        }
        if (msg.type === "subscribed") {
          note = undefined;
          if (!flow || lastSeq === undefined) {
            try {
              await load();
            } catch (err) {
              settled = true;
              ws.close();
              return reject(err);
            }
          }
          if (json && lastSeq === undefined) io.out(JSON.stringify({ type: "snapshot", flow }) + "\n");
          scheduleRender();
          if (isFinishedStatus(flowStatus)) finish("finished");
        } else if (msg.type === "event") {
          apply(msg);
          if (msg.event.startsWith("flow.") && isFinishedStatus(msg.status ?? "")) finish("finished");
        } else if (msg.type === "error") {
          if (msg.code === "events_expired") {
            lastSeq = undefined;
            finish("resync");
          } else if (msg.code === "superseded") {
            // ours, replaced by ourselves: nothing to do
          } else {
            settled = true;
            ws.close();
            reject(new ClientError(`the socket refused the watch: ${msg.message ?? msg.code}`));
          }
        }
      };
      ws.onclose = () => finish("dropped");
      ws.onerror = () => finish("dropped");
    });
  }
}
