// Raw WebSocket replay driver (uses the `ws` package from the OpenClaw client install):
//
//   $OPENCLAW_CLIENT_DIR/bin/node tests/conformance/raw-frames.mjs <file.json | '<json>'>
//
// Input: a JSON array of frames to send after the server's connect.challenge, or an object
//   { url, preChallenge?: [frames], frames: [frames], lingerMs?: 1500, timeoutMs?: 15000 }
// (with the array form the URL comes from argv[3]).
//   preChallenge  frames sent immediately on socket open, before the challenge arrives
//   frames        sent one at a time after connect.challenge; a `req` frame waits for the `res`
//                 with the same id before the next frame is sent
//   lingerMs      after the last response, how long to wait for the server to close the socket
//                 before the script closes it itself (1000, "done")
//
// Output, one JSON object per line:
//   {"kind":"open"}
//   {"kind":"sent","frame":…}
//   {"kind":"frame","frame":<every frame received, parsed>}   (or {"kind":"text","text":…})
//   {"kind":"close","code":N,"reason":"…","by":"server"|"client"}
//   {"kind":"error","error":"…"}   (socket errors, timeouts)
import { createRequire } from "node:module";
import { readFileSync, existsSync } from "node:fs";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const arg = process.argv[2];
if (!arg) {
  emit({ kind: "error", error: "usage: raw-frames.mjs <file.json|json> [url]" });
  process.exit(2);
}
let cfg = JSON.parse(existsSync(arg) ? readFileSync(arg, "utf8") : arg);
if (Array.isArray(cfg)) cfg = { frames: cfg };
const url = cfg.url ?? process.argv[3];
if (!url) {
  emit({ kind: "error", error: "no url" });
  process.exit(2);
}
const lingerMs = cfg.lingerMs ?? 1500;
const queue = [...(cfg.frames ?? [])];

let closing = false;
let waitingFor = null; // id of the req whose res we wait for
let lingerTimer = null;
let challenged = false;

const ws = new WebSocket(url, { perMessageDeflate: false });

const overall = setTimeout(() => {
  emit({ kind: "error", error: "timeout" });
  closeByClient();
  setTimeout(() => process.exit(3), 500);
}, cfg.timeoutMs ?? 15000);

function closeByClient() {
  if (closing) return;
  closing = true;
  try {
    ws.close(1000, "done");
  } catch {}
  // if the close handshake does not complete, report anyway
  setTimeout(() => {
    emit({ kind: "close", code: null, reason: "client close timed out", by: "client" });
    process.exit(0);
  }, 2000).unref();
}

function send(frame) {
  if (ws.readyState !== WebSocket.OPEN) return false;
  ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  emit({ kind: "sent", frame });
  return true;
}

function pump() {
  if (waitingFor !== null || closing) return;
  while (queue.length > 0) {
    const frame = queue.shift();
    if (!send(frame)) return;
    if (frame && frame.type === "req" && typeof frame.id === "string") {
      waitingFor = frame.id;
      return;
    }
  }
  // nothing left to send: give the server lingerMs to close, then close ourselves
  if (!lingerTimer) lingerTimer = setTimeout(closeByClient, lingerMs);
}

ws.on("open", () => {
  emit({ kind: "open" });
  for (const frame of cfg.preChallenge ?? []) send(frame);
});

ws.on("message", (data) => {
  const text = data.toString("utf8");
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    emit({ kind: "text", text });
    return;
  }
  emit({ kind: "frame", frame });
  if (!challenged && frame?.type === "event" && frame.event === "connect.challenge") {
    challenged = true;
    pump();
    return;
  }
  if (frame?.type === "res" && waitingFor !== null && frame.id === waitingFor) {
    waitingFor = null;
    pump();
  }
});

ws.on("error", (err) => emit({ kind: "error", error: String(err?.message ?? err) }));

ws.on("close", (code, reason) => {
  clearTimeout(overall);
  if (lingerTimer) clearTimeout(lingerTimer);
  emit({ kind: "close", code, reason: reason.toString("utf8"), by: closing ? "client" : "server" });
  process.exit(0);
});
