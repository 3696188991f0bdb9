/**
 * A minimal WebSocket client over a raw TCP socket, for fan-out benchmarks: it counts text frames
 * and looks into a frame only when it holds `flow.completed`, so a thousand of them cost little
 * CPU and the benchmark measures the server's delivery rather than its own message dispatch.
 */
const COMPLETED = Buffer.from('"flow.completed"');

export async function frameCountingSocket(wsUrl: string, token: string) {
  const url = new URL(wsUrl);
  const completed = new Set<string>();
  let waiting: { flowId: string; resolve: () => void } | null = null;
  let frames = 0;
  let upgraded = false;
  let buffer = Buffer.alloc(0);
  let opened!: () => void;
  let failed!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => ((opened = resolve), (failed = reject)));

  /** Client frames are masked (RFC 6455); a zero mask keeps the payload as it is. */
  const clientFrame = (opcode: number, payload: Buffer) => {
    if (payload.length > 125) throw new Error("client frames here are small");
    return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
  };

  const onFrames = (socket: { write(data: Buffer): number }) => {
    let at = 0;
    for (;;) {
      if (buffer.length - at < 2) break;
      const opcode = buffer[at]! & 0x0f;
      let length = buffer[at + 1]! & 0x7f;
      let header = 2;
      if (length === 126) {
        if (buffer.length - at < 4) break;
        length = buffer.readUInt16BE(at + 2);
        header = 4;
      } else if (length === 127) {
        if (buffer.length - at < 10) break;
        length = Number(buffer.readBigUInt64BE(at + 2));
        header = 10;
      }
      if (buffer.length - at < header + length) break;
      const payload = buffer.subarray(at + header, at + header + length);
      at += header + length;
      if (opcode === 0x1) {
        frames++;
        if (payload.indexOf(COMPLETED) >= 0) {
          const flowId = /"flowId":"([^"]+)"/.exec(payload.toString("utf8"))?.[1];
          if (flowId) {
            completed.add(flowId);
            if (waiting?.flowId === flowId) waiting.resolve();
          }
        }
      } else if (opcode === 0x9) socket.write(clientFrame(0xa, Buffer.from(payload)));
    }
    buffer = buffer.subarray(at);
  };

  const socket = await Bun.connect({
    hostname: url.hostname,
    port: Number(url.port),
    socket: {
      open(s) {
        s.write(
          `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64")}\r\n` +
            `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
        );
      },
      data(s, chunk) {
        buffer = buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffer, chunk]);
        if (!upgraded) {
          const end = buffer.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = buffer.subarray(0, end).toString("latin1");
          if (!head.startsWith("HTTP/1.1 101")) return failed(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
          upgraded = true;
          buffer = buffer.subarray(end + 4);
          opened();
        }
        onFrames(s);
      },
      error(_s, err) {
        failed(err);
      },
    },
  });
  await ready;
  socket.write(clientFrame(0x1, Buffer.from(JSON.stringify({ op: "subscribe", all: true }))));
  return {
    /** Text frames received so far (replies and events). */
    get frames() {
      return frames;
    },
    sawCompletion: (flowId: string) =>
      new Promise<void>((resolve, reject) => {
        if (completed.has(flowId)) return resolve();
        const timer = setTimeout(() => reject(new Error(`a socket never saw ${flowId} complete`)), 60_000);
        waiting = { flowId, resolve: () => (clearTimeout(timer), resolve()) };
      }),
    close: () => socket.end(),
  };
}
