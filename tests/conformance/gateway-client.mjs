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
//   calls = []                  [{ method, params? }] issued in order after hello-ok
//   hold = false                after the calls, print {"kind":"ready",…} and stay connected until
//                               stdin closes (or SIGTERM/SIGINT), then stop()
//   timeoutMs = 20000           overall budget; on expiry prints {"kind":"error","error":"timeout"}
//
// Output: JSON lines on stdout. Without `hold`: exactly one line
//   {"kind":"result","ok":true,"hello":<hello-ok payload>,"results":[{method,ok,payload|error}]}
// With `hold`: the same object with "kind":"ready", then {"kind":"stopped"} on shutdown.
// Connect failures print {"kind":"error","error":…,"code"?,"details"?} and exit with status 2.
//
// The client is device-less (`deviceIdentity: null`), so it authenticates with the shared token only.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

async function loadGatewayClient() {
  const spec = "openclaw/plugin-sdk/gateway-runtime";
  try {
    // Works when this script sits inside the client install dir (ESM ignores NODE_PATH).
    return (await import(spec)).GatewayClient;
  } catch (first) {
    // Otherwise resolve through CommonJS resolution, which honours NODE_PATH (set by bin/node).
    try {
      const resolved = createRequire(import.meta.url).resolve(spec);
      return (await import(pathToFileURL(resolved).href)).GatewayClient;
    } catch (second) {
      throw new Error(`cannot load ${spec}: ${first?.message ?? first}; ${second?.message ?? second}`);
    }
  }
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
if (!cfg.url || !cfg.token) {
  emit({ kind: "error", error: "config needs url and token" });
  process.exit(2);
}

let finished = false;
let client = null;
function finish(obj, code) {
  if (finished) return;
  finished = true;
  emit(obj);
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

const GatewayClient = await loadGatewayClient();
let helloSeen = false;

client = new GatewayClient({
  url: cfg.url,
  token: cfg.token,
  deviceIdentity: null,
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
      const payload = await client.request(call.method, call.params);
      results.push({ method: call.method, ok: true, payload: payload ?? null });
    } catch (err) {
      results.push({ method: call.method, ok: false, error: errorInfo(err) });
    }
  }
  if (!cfg.hold) {
    clearTimeout(overall);
    finish({ kind: "result", ok: true, hello, results }, 0);
    return;
  }
  clearTimeout(overall);
  emit({ kind: "ready", ok: true, hello, results });
  const stop = () => finish({ kind: "stopped" }, 0);
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

client.start();
