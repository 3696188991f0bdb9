/**
 * `bun run bench definitions`: the latency of `POST /v1/definitions/:name/runs` beside posting the
 * same flow to `POST /v1/flows` (interleaved, one API and one worker process), and of a publish
 * that fans out to 10 triggers. Only the request is timed; the flows it started finish before the next.
 */
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { startCluster } from "../test/helpers/cluster";
import { median, percentile, printConditions, ratio } from "./stats";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const TRIGGERS = 10;

const input = { customer: { id: 42 }, items: [1, 2, 3] };
const definition = {
  input: { type: "object", required: ["customer"], properties: { customer: { type: "object", properties: { id: { type: "integer" } } } } },
  flow: {
    root: {
      name: "echo",
      data: { customer: { $input: "/customer/id" } },
      children: Array.from({ length: 9 }, (_, i) => ({ name: "echo", data: { i, items: { $input: "/items" } } })),
    },
  },
};
const direct = {
  name: "order",
  root: { name: "echo", data: { customer: 42 }, children: Array.from({ length: 9 }, (_, i) => ({ name: "echo", data: { i, items: [1, 2, 3] } })) },
};

type Reply = { status: number; body: any };

/**
 * Times one request, then (untimed) waits for the flows it started to finish: each request is
 * measured on a quiet machine rather than racing the worker's run of the previous one on 2 cores.
 */
async function timed(call: () => Promise<Reply>, expected: number, settle: (body: any) => Promise<unknown>): Promise<number> {
  const t = performance.now();
  const res = await call();
  const ms = performance.now() - t;
  if (res.status !== expected) throw new Error(`${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  await settle(res.body);
  return ms;
}

await checkServices();
await ensureTemplate();
printConditions("definitions: runs by name vs the same 10-job flow posted directly; a publish to 10 triggers", { rounds: ROUNDS, triggers: TRIGGERS });
const cluster = await startCluster({ tag: "bench-defs" });
try {
  const http = cluster.apis[0]!.http;
  await http("PUT", "/v1/definitions/order", definition);
  for (let i = 0; i < TRIGGERS; i++) await http("POST", "/v1/triggers", { topic: "order.placed", definition: "order" });
  const finished = (ids: string[]) => Promise.all(ids.map((id) => http("GET", `/v1/flows/${id}?wait=20`)));
  const runs: number[] = [];
  const flows: number[] = [];
  const publishes: number[] = [];
  for (let r = 0; r < 20; r++) {
    await http("POST", "/v1/definitions/order/runs", { input });
    await http("POST", "/v1/flows", direct);
  }
  for (let r = 0; r < ROUNDS; r++) {
    runs.push(await timed(() => http("POST", "/v1/definitions/order/runs", { input }), 201, (f) => finished([f.id])));
    flows.push(await timed(() => http("POST", "/v1/flows", direct), 201, (f) => finished([f.id])));
  }
  for (let r = 0; r < Math.min(ROUNDS, 100); r++)
    publishes.push(
      await timed(() => http("POST", "/v1/publish", { topic: "order.placed", payload: input }), 200, (a) =>
        finished(a.started.map((s: { flowId: string }) => s.flowId)),
      ),
    );
  const p50 = (xs: number[]) => median(xs).toFixed(1);
  console.log(`POST /v1/flows:                    p50 ${p50(flows)} ms, p95 ${percentile(flows, 95).toFixed(1)} ms`);
  console.log(`POST /v1/definitions/:name/runs:   p50 ${p50(runs)} ms, p95 ${percentile(runs, 95).toFixed(1)} ms (${ratio(median(runs), median(flows))} of posting the flow)`);
  console.log(`POST /v1/publish to ${TRIGGERS} triggers:    p50 ${p50(publishes)} ms, p95 ${percentile(publishes, 95).toFixed(1)} ms (${ratio(median(publishes), median(flows))} of one flow)`);
} catch (err) {
  // The API's own account of a failure, beside the status the client saw.
  console.error(cluster.apis[0]!.proc.lines.filter((l) => /"level":"(error|warn)"/.test(l)).slice(-5).join("\n"));
  throw err;
} finally {
  await cluster.stop();
}
