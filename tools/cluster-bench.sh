#!/usr/bin/env bash
# One ringgate host against a three-host cluster (one NATS server with JetStream), on this
# machine, in the same session: broadcast fan-out, handshakes, node.invoke and chat turns
# (sessions owned by the client's host, and owned by another host).
# Every host runs one shard. Each scenario runs RUNS times, interleaved (solo, cluster, solo,
# …); the table gives medians, with server CPU (the sum over the hosts) and NATS's CPU.
#
#   tools/cluster-bench.sh            # RUNS=3 DURATION=5
#   RUNS=5 tools/cluster-bench.sh
#   SCENARIOS=chat tools/cluster-bench.sh   # any of: broadcast handshake invoke chat
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-broadcast handshake invoke chat}
DURATION=${DURATION:-5}
BIN=target/release/ringgate
LG=target/release/loadgen
command -v nats-server >/dev/null || { echo "needs Debian's nats-server (make nats-deps)"; exit 1; }
cargo build --release -p ringgate -p loadgen >/dev/null
WORK=$(mktemp -d)
PIDS=()
# start() runs in a command substitution, so its PIDS+= is lost: the gateways are found by
# their state directories under $WORK.
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; pkill -f -- "--state-dir $WORK/" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

nats-server -js -sd "$WORK/js" -a 127.0.0.1 -p -1 >"$WORK/nats.log" 2>&1 &
NATS_PID=$!; PIDS+=($NATS_PID)
for _ in $(seq 100); do grep -q "Listening for client connections" "$WORK/nats.log" && break; sleep 0.1; done
NATS_URL="nats://127.0.0.1:$(grep -o 'client connections on [0-9.:]*' "$WORK/nats.log" | grep -o '[0-9]*$')"

start() { # name, extra args…
  local name=$1; shift
  "$BIN" run --port 0 --token T --shards 1 --state-dir "$WORK/$name" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -ao '[0-9]*$' "$WORK/$name.out"
}
PS=$(start solo)
PA=$(start a --cluster-nats "$NATS_URL" --cluster-name host-a)
PB=$(start b --cluster-nats "$NATS_URL" --cluster-name host-b)
PC=$(start c --cluster-nats "$NATS_URL" --cluster-name host-c)
SOLO="ws://127.0.0.1:$PS/"
CLUSTER="ws://127.0.0.1:$PA/,ws://127.0.0.1:$PB/,ws://127.0.0.1:$PC/"
CROSS="ws://127.0.0.1:$PA/,ws://127.0.0.1:$PC/"
ROTATED="ws://127.0.0.1:$PB/,ws://127.0.0.1:$PC/,ws://127.0.0.1:$PA/"
sleep 2

nats_cpu() { awk '{print ($14+$15)}' "/proc/$NATS_PID/stat"; }
OUT="$WORK/results.jsonl"
run() { # label, scenario, url, args…
  local label=$1 scenario=$2 url=$3; shift 3
  case " $SCENARIOS " in *" $scenario "*) ;; *) return 0 ;; esac
  local n0; n0=$(nats_cpu)
  local line
  line=$("$LG" "$scenario" --url "$url" --token T --duration "$DURATION" --json "$@" 2>/dev/null | grep '^{' | tail -1)
  local n1; n1=$(nats_cpu)
  echo "{\"label\":\"$label\",\"nats_cpu_s\":$(( n1 - n0 ))e-2,\"r\":$line}" >>"$OUT"
}
for i in $(seq "$RUNS"); do
  run "broadcast one host" broadcast "$SOLO" --subscribers 300 --rounds 200 --same-entry
  run "broadcast 3 hosts" broadcast "$CLUSTER" --subscribers 300 --rounds 200 --same-entry
  run "handshake one host" handshake "$SOLO" --concurrency 16
  run "handshake 3 hosts" handshake "$CLUSTER" --concurrency 16
  run "invoke one host" invoke "$SOLO"
  run "invoke across hosts" invoke "$CROSS"
  run "chat one host" chat "$SOLO" --sessions 32
  run "chat 3 hosts" chat "$CLUSTER" --sessions 32
  # Every session owned by another host than its client's: claimed through one URL order,
  # then driven through the rotated one (each turn crosses to the owner and back).
  case " $SCENARIOS " in *" chat "*)
    "$LG" chat --url "$CLUSTER" --token T --duration 1 --sessions 32 --key-prefix "x$i" >/dev/null 2>&1 ;;
  esac
  run "chat across hosts" chat "$ROTATED" --sessions 32 --key-prefix "x$i"
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
keys = {
    "broadcast": ["deliveries_per_s", "last_p50_us", "last_p99_us", "server_cpu_us_per_delivery"],
    "handshake": ["handshakes_per_s", "latency_p50_us", "latency_p99_us", "server_cpu_us_per_handshake"],
    "invoke": ["invokes_per_s", "latency_p50_us", "latency_p99_us", "server_cpu_us_per_invoke"],
    "chat": ["turns_per_s", "final_p50_us", "final_p99_us", "server_cpu_us_per_turn"],
}
print("| run | " + " | ".join(["figure 1", "figure 2", "figure 3", "server CPU per unit", "server CPU %", "NATS CPU s"]) + " |")
print("|---|---|---|---|---|---|---|")
for label, rs in by.items():
    kind = label.split()[0]
    cells = []
    for k in keys[kind]:
        vals = [r["r"].get(k) for r in rs if isinstance(r["r"].get(k), (int, float))]
        cells.append(f"{k} {statistics.median(vals):.1f}" if vals else f"{k} –")
    cpu = [r["r"].get("server_cpu_pct") for r in rs if isinstance(r["r"].get("server_cpu_pct"), (int, float))]
    nats = [r["nats_cpu_s"] for r in rs]
    cells.append(f"{statistics.median(cpu):.1f}" if cpu else "–")
    cells.append(f"{statistics.median(nats):.2f}")
    print(f"| {label} (n={len(rs)}) | " + " | ".join(cells) + " |")
PY
