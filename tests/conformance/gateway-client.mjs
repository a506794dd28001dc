// Conformance driver built on the real OpenClaw client class (GatewayClient from the published
// `openclaw` npm package). Run it with the installed client's Node wrapper:
//
//   $OPENCLAW_CLIENT_DIR/bin/node tests/conformance/gateway-client.mjs '<json config>'
//
// Config (one JSON argument):
//   url, token                  gateway URL and shared token (required)
//   clientName = "cli"          connect.params.client.id
//   mode = "cli"                connect.params.client.mode
//   scopes = ["operator.admin"] requested operator scopes
//   instanceId, displayName     optional client.instanceId / client.displayName
//   calls = []                  [{ method, params?, expectFinal? }] issued in order after hello-ok
//                               (expectFinal: the client library's two-phase request option)
//   untilEvent                  { event, state? }: after the calls, wait for this event (with
//                               payload.state === state when given) before printing the result
//   hold = false                after the calls, print {"kind":"ready",…} and stay connected until
//                               stdin closes (or SIGTERM/SIGINT), then stop()
//   timeoutMs = 20000           overall budget; on expiry prints {"kind":"error","error":"timeout"}
//
//   device = false              true: give the client a real device identity through the client
//                               library's own mechanism (`loadOrCreateDeviceIdentity`, stored in
//                               SQLite under $HOME/.openclaw, created on first use); GatewayClient
//                               then signs the challenge, stores the `auth.deviceToken` of hello-ok
//                               under $HOME and reuses it on later runs with the same HOME
//   sharedToken = true          false: do not pass the shared token (with `device`, the client then
//                               authenticates with its stored device token, if any)
//
// Output: JSON lines on stdout. Without `hold`: exactly one line
//   {"kind":"result","ok":true,"hello":<hello-ok payload>,"results":[{method,ok,payload|error}],
//    "device":{deviceId,publicKey}|null,"connects":[{hasToken,hasDeviceToken,deviceId}],
//    "events":[{event,payload}]}
// where `connects` describes every connect request the client sent (secrets redacted) and
// `events` lists the gateway events received (except ticks/health/presence).
// With `hold`: the same object with "kind":"ready", then {"kind":"stopped"} on shutdown.
// Connect failures print {"kind":"error","error":…,"code"?,"details"?,"device","connects"} and exit
// with status 2.
//
// Without `device` the client is device-less (`deviceIdentity: null`) and authenticates with the
// shared token only.
import { createRequire } from "node:module";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const GATEWAY_RUNTIME = "openclaw/plugin-sdk/gateway-runtime";

// Absolute file URL of the gateway runtime entry point.
function resolveGatewayRuntime() {
  const errors = [];
  try {
    // Works when this script sits inside the client install dir (ESM ignores NODE_PATH).
    return import.meta.resolve(GATEWAY_RUNTIME);
  } catch (err) {
    errors.push(err?.message ?? String(err));
  }
  try {
    // Otherwise resolve through CommonJS resolution, which honours NODE_PATH (set by bin/node).
    return pathToFileURL(createRequire(import.meta.url).resolve(GATEWAY_RUNTIME)).href;
  } catch (err) {
    errors.push(err?.message ?? String(err));
  }
  throw new Error(`cannot resolve ${GATEWAY_RUNTIME}: ${errors.join("; ")}`);
}

// The client library's own device identity functions. They are not re-exported by a public entry
// point, so find the bundled chunk (dist/device-identity-<hash>.mjs) that exports
// `loadOrCreateDeviceIdentity` — the very module GatewayClient uses for its default identity.
async function loadDeviceIdentityModule(runtimeUrl) {
  let dir = path.dirname(fileURLToPath(runtimeUrl));
  while (path.basename(dir) !== "dist" && path.dirname(dir) !== dir) dir = path.dirname(dir);
  for (const name of readdirSync(dir).filter((n) => /^device-identity-[\w-]+\.mjs$/.test(n)).sort()) {
    const file = path.join(dir, name);
    const exportsLine = readFileSync(file, "utf8").match(/export \{([^}]*)\}/)?.[1] ?? "";
    const alias = (fn) => exportsLine.match(new RegExp(`\\b${fn} as (\\w+)`))?.[1];
    const load = alias("loadOrCreateDeviceIdentity");
    const pub = alias("publicKeyRawBase64UrlFromPem");
    if (!load || !pub) continue;
    const mod = await import(pathToFileURL(file).href);
    return { loadOrCreateDeviceIdentity: mod[load], publicKeyRawBase64UrlFromPem: mod[pub] };
  }
  throw new Error(`no device-identity chunk exporting loadOrCreateDeviceIdentity in ${dir}`);
}

// Records the connect requests the client sends (the client's own `ws` instance is patched).
function watchConnectFrames(runtimeUrl, connects) {
  const require = createRequire(fileURLToPath(runtimeUrl));
  const wsRoot = path.dirname(require.resolve("ws/package.json"));
  const WebSocket = require(path.join(wsRoot, "lib/websocket.js"));
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data, ...rest) {
    try {
      const frame = JSON.parse(typeof data === "string" ? data : data.toString());
      if (frame?.type === "req" && frame.method === "connect") {
        const auth = frame.params?.auth ?? {};
        connects.push({
          hasToken: Boolean(auth.token),
          hasDeviceToken: Boolean(auth.deviceToken),
          deviceId: frame.params?.device?.id ?? null,
          clientId: frame.params?.client?.id ?? null,
          scopes: frame.params?.scopes ?? null,
        });
      }
    } catch {}
    return send.call(this, data, ...rest);
  };
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function errorInfo(err) {
  return {
    code: err?.gatewayCode ?? err?.code ?? null,
    message: err?.message ?? String(err),
    details: err?.details ?? null,
  };
}

const cfg = JSON.parse(process.argv[2] ?? "{}");
const useSharedToken = cfg.sharedToken !== false;
if (!cfg.url || (useSharedToken && !cfg.token)) {
  emit({ kind: "error", error: "config needs url and token" });
  process.exit(2);
}

let finished = false;
let client = null;
let device = null;
const connects = [];
const events = [];
function finish(obj, code) {
  if (finished) return;
  finished = true;
  emit({ ...obj, device, connects, events });
  try {
    client?.stop();
  } catch {}
  // Give the close frame a moment, then exit even if handles linger.
  setTimeout(() => process.exit(code), 200).unref();
  setTimeout(() => process.exit(code), 1000);
}

const overall = setTimeout(
  () => finish({ kind: "error", error: "timeout" }, 3),
  cfg.timeoutMs ?? 20000,
);

const runtimeUrl = resolveGatewayRuntime();
const { GatewayClient } = await import(runtimeUrl);
watchConnectFrames(runtimeUrl, connects);
if (cfg.device) {
  const ident = await loadDeviceIdentityModule(runtimeUrl);
  const identity = ident.loadOrCreateDeviceIdentity();
  device = {
    deviceId: identity.deviceId,
    publicKey: ident.publicKeyRawBase64UrlFromPem(identity.publicKeyPem),
  };
}
let helloSeen = false;
let holding = false;
let untilSeen = null;
const untilWaiters = [];

client = new GatewayClient({
  url: cfg.url,
  ...(useSharedToken ? { token: cfg.token } : {}),
  // undefined: GatewayClient loads the identity itself (the same one as above), null: device-less
  deviceIdentity: cfg.device ? undefined : null,
  clientName: cfg.clientName ?? "cli",
  mode: cfg.mode ?? "cli",
  role: "operator",
  scopes: cfg.scopes ?? ["operator.admin"],
  ...(cfg.instanceId ? { instanceId: cfg.instanceId } : {}),
  ...(cfg.displayName ? { clientDisplayName: cfg.displayName } : {}),
  requestTimeoutMs: 10000,
  onConnectError: (err) => finish({ kind: "error", error: "connect", ...errorInfo(err) }, 2),
  onClose: (code, reason) => {
    if (!helloSeen) finish({ kind: "error", error: "closed before hello-ok", closeCode: code, reason }, 2);
  },
  onEvent: (evt) => {
    if (["tick", "health", "presence", "heartbeat"].includes(evt?.event)) return;
    const entry = { event: evt?.event, payload: evt?.payload ?? null };
    if (events.length < 200) events.push(entry);
    const u = cfg.untilEvent;
    if (u && !untilSeen && evt?.event === u.event && (u.state === undefined || evt?.payload?.state === u.state)) {
      untilSeen = entry;
      for (const w of untilWaiters.splice(0)) w();
    }
    if (holding) emit({ kind: "event", ...entry });
  },
  onHelloOk: (hello) => {
    if (helloSeen) return; // a reconnect; ignore
    helloSeen = true;
    run(hello).catch((err) => finish({ kind: "error", error: "driver", ...errorInfo(err) }, 2));
  },
});

async function run(hello) {
  const results = [];
  for (const call of cfg.calls ?? []) {
    try {
      const payload = await client.request(
        call.method,
        call.params,
        call.expectFinal ? { expectFinal: true } : undefined,
      );
      results.push({ method: call.method, ok: true, payload: payload ?? null });
    } catch (err) {
      results.push({ method: call.method, ok: false, error: errorInfo(err) });
    }
  }
  if (cfg.untilEvent && !untilSeen) {
    await new Promise((resolve) => untilWaiters.push(resolve));
  }
  if (!cfg.hold) {
    clearTimeout(overall);
    finish({ kind: "result", ok: true, hello, results }, 0);
    return;
  }
  clearTimeout(overall);
  emit({ kind: "ready", ok: true, hello, results, device, connects, events });
  holding = true;
  const stop = () => finish({ kind: "stopped" }, 0);
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

client.start();
