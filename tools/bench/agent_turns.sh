#!/usr/bin/env bash
# tools/bench/agent_turns.sh — chat turns with a tool call: ringgate's `openclaw-worker` agent
# (the original's agent loop in `openclaw worker` processes on ringgate's worker channel) vs the
# original gateway's in-process agent, both against the same mock model
# (tools/bench/mock_model.py: two model calls and one `read` tool run per turn).
#
# Each of RUNS rounds starts a fresh server of each kind (interleaved), warms it with WARM
# seconds of turns (the original's first turn loads its agent runtime, ~6 s), then runs
# `loadgen chat --sessions SESSIONS --duration DUR --pid <server>` and records: turns/s,
# send → final p50/p99, gateway CPU per turn (the server process; for ringgate that includes
# its worker supervisor's spawn and cleanup), CPU per turn of the processes the gateway started
# (ringgate's workers; the original's helpers), the gateway's RSS and its whole session's after
# the run (helpers, workers, the prewarmed worker), and for ringgate the workers' peak RSS
# (from its log). JSON lines go to OUT/agent_turns.jsonl, a summary to stdout.
#
# Needs: target/release/{ringgate,loadgen}, the pinned client in target/openclaw-client
# (`make openclaw-client`), python3. About 2 × RUNS × (DUR + 20) seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
DUR=${DUR:-30}
WARM=${WARM:-8}
SESSIONS=${SESSIONS:-1}
OUT=${OUT:-$ROOT/target/compare}
OC=${OPENCLAW_CLIENT_DIR:-$ROOT/target/openclaw-client}
BIN=$ROOT/target/release
mkdir -p "$OUT"
RES=$OUT/agent_turns.jsonl
: >"$RES"
WORK=$(mktemp -d /tmp/agent-turns.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM -- "-$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# utime+stime and cutime+cstime of a process, in seconds
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f %.3f\n", ($14+$15)/hz, ($16+$17)/hz}' "/proc/$1/stat"; }
# resident KiB of a process, and of its whole session (the server started it with setsid:
# the original's helper processes, ringgate's workers and its prewarmed worker)
proc_rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
session_rss() { ps -o rss= -s "$1" | awk '{s+=$1} END {print s+0}'; }

MOCK_PORT=$(free_port)
MOCK_LOG=1 setsid python3 tools/bench/mock_model.py "$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=($MOCK_PID)
WS=$WORK/ws
mkdir -p "$WS"
printf 'WORKER-FILE-77\n' >"$WS/hello.txt"

start_ringgate() {  # → PID PORT in globals
  local sd=$WORK/rg-$1
  mkdir -p "$sd"
  cat >"$sd/cfg.json5" <<JSON
{ ringgate: { agents: { main: { runtime: "openclaw-worker", baseUrl: "http://127.0.0.1:$MOCK_PORT/v1",
  model: "mock-model", workspace: "$WS", command: "$OC/bin/openclaw", maxConcurrent: 4 } } } }
JSON
  RUST_LOG=info setsid "$BIN/ringgate" run --port 0 --token T --shards 1 --state-dir "$sd" \
    --config "$sd/cfg.json5" >"$sd/log" 2>&1 &
  PID=$!
  PIDS+=($PID)
  for _ in $(seq 100); do
    PORT=$(grep -a -o 'listening on ws://[0-9.:]*' "$sd/log" | sed 's/.*://' || true)
    [[ -n $PORT ]] && break
    sleep 0.1
  done
  LOG=$sd/log
}

start_original() {
  local sd=$WORK/orig-$1
  mkdir -p "$sd/home" "$sd/state"
  PORT=$(free_port)
  cat >"$sd/openclaw.json" <<JSON
{
  "gateway": {"mode": "local", "bind": "loopback", "port": $PORT, "auth": {"mode": "token", "token": "T"}},
  "update": {"checkOnStart": false},
  "discovery": {"mdns": {"mode": "off"}},
  "logging": {"file": "$sd/openclaw.log"},
  "models": {"mode": "replace", "catalogRefresh": {"enabled": false}, "providers": {"mock": {
    "baseUrl": "http://127.0.0.1:$MOCK_PORT/v1", "apiKey": "mock-key", "api": "openai-completions",
    "models": [{"id": "mock-model", "name": "Mock Model", "reasoning": false, "input": ["text"],
      "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
      "contextWindow": 128000, "maxTokens": 4096}]}}},
  "agents": {"defaults": {"workspace": "$WS", "model": {"primary": "mock/mock-model"},
    "skipBootstrap": true, "heartbeat": {"every": "0m"}}}
}
JSON
  HOME=$sd/home OPENCLAW_CLIENT_HOME=$sd/home OPENCLAW_STATE_DIR=$sd/state \
    OPENCLAW_CONFIG_PATH=$sd/openclaw.json OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 \
    setsid "$OC/bin/openclaw" gateway run --bind loopback --port "$PORT" --auth token --token T \
    >"$sd/gateway.log" 2>&1 </dev/null &
  PID=$!
  PIDS+=($PID)
  for _ in $(seq 900); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && grep -q '\[gateway\].*ready' "$sd/gateway.log"; then break; fi
    sleep 0.1
  done
  LOG=$sd/gateway.log
}

run_one() {  # $1 = ringgate|original, $2 = round
  kill -0 "$MOCK_PID" 2>/dev/null || { echo "the mock model died:" >&2; cat "$WORK/mock.log" >&2; exit 1; }
  if [[ $1 == ringgate ]]; then start_ringgate "$2"; else start_original "$2"; fi
  "$BIN/loadgen" chat --url "ws://127.0.0.1:$PORT" --token T --sessions "$SESSIONS" \
    --duration "$WARM" --json >/dev/null 2>&1 || true
  sleep 3
  read -r c0 k0 < <(cpu "$PID")
  local calls0
  calls0=$(wc -l <"$WORK/mock.log")
  local json
  json=$("$BIN/loadgen" chat --url "ws://127.0.0.1:$PORT" --token T --sessions "$SESSIONS" \
    --duration "$DUR" --pid "$PID" --json 2>/dev/null | tail -1)
  sleep 3  # let the last workers exit (ringgate reaps them: their CPU lands in cutime)
  read -r c1 k1 < <(cpu "$PID")
  local calls=$(( $(wc -l <"$WORK/mock.log") - calls0 ))
  local rss srss peak
  rss=$(proc_rss "$PID")
  srss=$(session_rss "$PID")
  peak=$(grep -a -o 'peak_rss_mb=[0-9]*' "$LOG" | sed 's/.*=//' | sort -n | tail -1 || true)
  python3 - "$1" "$2" "$c0" "$c1" "$k0" "$k1" "$rss" "$srss" "${peak:-0}" "$calls" "$json" >>"$RES" <<'PY'
import json, sys
kind, rnd, c0, c1, k0, k1, rss, srss, peak, calls, j = sys.argv[1:]
d = json.loads(j)
t = max(d["turns"], 1)
print(json.dumps({"server": kind, "round": int(rnd), "turns": d["turns"], "turns_per_s": d["turns_per_s"],
  "final_p50_ms": d["final_p50_us"] / 1000, "final_p99_ms": d["final_p99_us"] / 1000,
  "gateway_cpu_ms_per_turn": (float(c1) - float(c0)) * 1000 / t,
  "children_cpu_ms_per_turn": (float(k1) - float(k0)) * 1000 / t,
  "gateway_rss_mb": int(rss) / 1024, "session_rss_mb": int(srss) / 1024,
  "worker_peak_rss_mb": int(peak),
  "model_calls_per_turn": int(calls) / t,
  "unfinished": d["unfinished_turns"], "errors": d["errors"]}))
PY
  kill -TERM -- "-$PID" 2>/dev/null || true
  sleep 2
  kill -KILL -- "-$PID" 2>/dev/null || true
  kill -0 "$MOCK_PID" 2>/dev/null || echo "the mock model died during the $1 run" >&2
}

ORDER=${ORDER:-ringgate original}
for r in $(seq "$RUNS"); do
  for kind in $ORDER; do run_one "$kind" "$r"; done
done

python3 - "$RES" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["turns_per_s", "final_p50_ms", "final_p99_ms", "gateway_cpu_ms_per_turn",
        "children_cpu_ms_per_turn", "gateway_rss_mb", "session_rss_mb", "worker_peak_rss_mb",
        "model_calls_per_turn"]
med = {}
kinds = [s for s in ["ringgate", "original"] if any(r["server"] == s for r in rows)]
for s in kinds:
    rs = [r for r in rows if r["server"] == s]
    med[s] = {k: statistics.median(r[k] for r in rs) for k in keys}
    print(s, "runs:", [(round(r["turns_per_s"], 2), round(r["final_p50_ms"])) for r in rs])
if len(kinds) < 2:
    sys.exit(0)
print("%-26s %12s %12s %10s" % ("median", "ringgate", "original", "rg/orig"))
for k in keys:
    a, b = med["ringgate"][k], med["original"][k]
    print("%-26s %12.1f %12.1f %10s" % (k, a, b, "%.2f" % (a / b) if b else "-"))
PY
