#!/usr/bin/env bash
# What TLS costs: one ringgate with plain ws:// and one with gateway.tls (wss://, the generated
# ECDSA P-256 certificate), one shard each, on this machine in the same session. Handshakes
# (plain; TLS resumed with a session ticket; TLS full), request throughput, broadcast fan-out
# (every delivery sealed per connection) and server bytes per idle connection. Each scenario
# runs RUNS times, interleaved (plain, tls, plain, …); the table gives medians with server CPU.
#
#   tools/tls-bench.sh                 # RUNS=3 DURATION=5 IDLE=5000
#   SCENARIOS="handshake idle" tools/tls-bench.sh   # any of: handshake rpc broadcast idle
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
IDLE=${IDLE:-5000}
SCENARIOS=${SCENARIOS:-handshake rpc broadcast idle}
BIN=target/release/ringgate
LG=target/release/loadgen
cargo build --release -p ringgate -p loadgen >/dev/null
WORK=$(mktemp -d)
PIDS=()
# start() runs in a command substitution, so its PIDS+= is lost: the gateways are found by
# their state directories under $WORK.
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; pkill -f -- "--state-dir $WORK/" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start() { # name, config
  local name=$1
  mkdir -p "$WORK/$name"
  echo "$2" >"$WORK/$name/ringgate.json5"
  "$BIN" run --port 0 --token T --shards 1 --state-dir "$WORK/$name" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -ao 'listening on [a-z]*://[0-9.:]*' "$WORK/$name.out" | grep -ao '[0-9]*$'
}
PP=$(start plain '{}')
PT=$(start tls '{gateway: {tls: {enabled: true}}}')
PLAIN="ws://127.0.0.1:$PP/"
TLS="wss://127.0.0.1:$PT/"
sleep 1

OUT="$WORK/results.jsonl"
run() { # label, scenario, url, args…
  local label=$1 scenario=$2 url=$3; shift 3
  case " $SCENARIOS " in *" $scenario "*) ;; *) return 0 ;; esac
  local line
  line=$("$LG" "$scenario" --url "$url" --token T --duration "$DURATION" --json "$@" 2>/dev/null | grep '^{' | tail -1)
  echo "{\"label\":\"$label\",\"r\":$line}" >>"$OUT"
}
for _ in $(seq "$RUNS"); do
  run "handshake ws" handshake "$PLAIN" --concurrency 16
  run "handshake wss resumed" handshake "$TLS" --concurrency 16
  run "handshake wss full" handshake "$TLS" --concurrency 16 --tls-no-resume
  run "rpc ws" rpc "$PLAIN" --clients 16
  run "rpc wss" rpc "$TLS" --clients 16
  run "broadcast ws" broadcast "$PLAIN" --subscribers 300 --rounds 200 --same-entry
  run "broadcast wss" broadcast "$TLS" --subscribers 300 --rounds 200 --same-entry
  run "idle ws" idle "$PLAIN" --clients "$IDLE" --hold 3 --rate 2000
  run "idle wss" idle "$TLS" --clients "$IDLE" --hold 3 --rate 2000
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
keys = {
    "handshake": ["handshakes_per_s", "latency_p50_us", "server_cpu_us_per_handshake"],
    "rpc": ["req_per_s", "latency_p50_us", "server_cpu_us_per_request"],
    "broadcast": ["deliveries_per_s", "last_p50_us", "server_cpu_us_per_delivery"],
    "idle": ["server_bytes_per_conn", "alive_at_end", "connect_p50_us"],
}
print("| run | figure 1 | figure 2 | server CPU per unit / 3rd | server CPU % |")
print("|---|---|---|---|---|")
for label, rs in by.items():
    kind = label.split()[0]
    cells = []
    for k in keys[kind]:
        vals = [r["r"].get(k) for r in rs if isinstance(r["r"].get(k), (int, float))]
        cells.append(f"{k} {statistics.median(vals):.1f}" if vals else f"{k} –")
    cpu = [r["r"].get("server_cpu_pct") for r in rs if isinstance(r["r"].get("server_cpu_pct"), (int, float))]
    cells.append(f"{statistics.median(cpu):.1f}" if cpu else "–")
    print(f"| {label} (n={len(rs)}) | " + " | ".join(cells) + " |")
PY
