#!/usr/bin/env bash
# tools/compare.sh — side-by-side benchmark: ringgate vs the original OpenClaw gateway (Node)
# vs a bare WebSocket echo server (the transport ceiling). Called by `make compare`.
#
# Same loadgen scenarios against each server; each case RUNS times (interleaved across
# servers, so machine noise hits all of them alike); medians and ratios are printed as a
# table and written as JSON lines to target/compare/results.jsonl (one line per run,
# then one "summary" line per case/metric).
#
# Servers run on CPU 0 (ringgate pins its single shard itself; node and echo via taskset),
# loadgen on CPU 1 (`--cpus 1`). Loopback only. Every loadgen run has --duration and an
# outer `timeout`; every server started here is killed by PID (process group for node)
# on exit. Default settings finish in about 8 minutes on a 2-core machine.
#
# Environment (all optional):
#   BIN=target/release            ringgate, loadgen and echo binaries
#   SHARED=../shared              where conformance/install-openclaw.sh lives
#   OPENCLAW_CLIENT_DIR=...       an existing install (bin/openclaw); default: install
#                                 into target/openclaw-client with the shared script
#   RUNS=3  DUR=5                 runs per case, seconds per handshake/rpc run
#   IDLE_CLIENTS=5000 IDLE_HOLD=5 idle scenario size / hold time
#   BCAST_SUBS=1000 BCAST_ROUNDS=200
#   SLOW_DUR=10                   slow scenario duration (two phases of SLOW_DUR/2)
#   OUT=target/compare            output directory
#   WAIT_QUIET=0                  before each run wait up to this many seconds for the
#                                 machine to be >= 85% idle (shared machines); the idle
#                                 percentage seen is recorded with every run either way
#   SCALING=1                     additionally: idle at 1k/10k/19.5k and broadcast to
#                                 100/1k/10k for ringgate and the original (+~6 min)
#   PARTS=original,drivers        which tables to measure: "original" (ringgate vs the
#                                 original vs echo), "drivers" (ringgate on monoio
#                                 io_uring vs monoio epoll vs glommio; ~7 min) and/or
#                                 "metrics" (recording on, scraped every second, vs
#                                 diagnostics.enabled false; ~4 min)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release}
SHARED=${SHARED:-../shared}
RUNS=${RUNS:-3}
DUR=${DUR:-5}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
IDLE_HOLD=${IDLE_HOLD:-5}
BCAST_SUBS=${BCAST_SUBS:-1000}
BCAST_ROUNDS=${BCAST_ROUNDS:-200}
SLOW_DUR=${SLOW_DUR:-10}
SCALING=${SCALING:-0}
WAIT_QUIET=${WAIT_QUIET:-0}
PARTS=${PARTS:-original,drivers}
OUT=${OUT:-$ROOT/target/compare}
TOKEN=cmp-$$-$RANDOM$RANDOM

for b in ringgate loadgen echo; do
    [[ -x $BIN/$b ]] || { echo "missing $BIN/$b (run: cargo build --release --workspace)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed for the summary" >&2; exit 1; }

# --- CPU placement -----------------------------------------------------------------------
SERVER_CPU=0
LOAD_CPU=1
if (( $(nproc) < 2 )); then LOAD_CPU=0; fi
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$SERVER_CPU"); fi
LG=("$BIN/loadgen")
LGOPTS=(--cpus "$LOAD_CPU" --json)

# --- original gateway install ------------------------------------------------------------
if [[ -n ${OPENCLAW_CLIENT_DIR:-} && -x ${OPENCLAW_CLIENT_DIR}/bin/openclaw ]]; then
    OC_DIR=$OPENCLAW_CLIENT_DIR
else
    [[ -f $SHARED/conformance/install-openclaw.sh ]] || {
        echo "missing $SHARED/conformance/install-openclaw.sh (set SHARED=path/to/shared)" >&2; exit 1; }
    OC_DIR=$(bash "$SHARED/conformance/install-openclaw.sh" "$ROOT/target/openclaw-client" | tail -1)
fi

mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringgate-compare.XXXXXX")
RESULTS=$OUT/results.jsonl
[[ -f $RESULTS ]] && mv -f "$RESULTS" "$OUT/results.prev.jsonl"
: > "$RESULTS"
LOG=$OUT/compare.log
: > "$LOG"

# --- server lifecycle (everything started is tracked by PID) -----------------------------
PIDS=()      # plain processes
PGIDS=()     # process groups (node: the gateway forks helper workers)

kill_pid() { # pid [group]
    local pid=$1 grp=${2:-} i
    if [[ -n $grp ]]; then kill -TERM -- "-$pid" 2>/dev/null || true
    else kill -TERM "$pid" 2>/dev/null || true; fi
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        if [[ -n $grp ]]; then kill -KILL -- "-$pid" 2>/dev/null || true
        else kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    # a group can outlive its leader (helper workers)
    [[ -n $grp ]] && kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill_pid "$p"; done
    for p in "${PGIDS[@]}"; do kill_pid "$p" group; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # pid — drop from the tracking lists after it was stopped
    local p n=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || n+=("$p"); done; PIDS=("${n[@]}")
    n=()
    for p in "${PGIDS[@]}"; do [[ $p == "$1" ]] || n+=("$p"); done; PGIDS=("${n[@]}")
}
stop_server() { # pid
    local p g=
    for p in "${PGIDS[@]}"; do [[ $p == "$1" ]] && g=group; done
    kill_pid "$1" $g
    forget "$1"
}

# Reads "listening on ws://…" from a server's stdout file. Sets URL.
wait_listening() { # pid outfile seconds
    local pid=$1 out=$2 secs=$3 i line
    for i in $(seq $((secs * 10))); do
        line=$(grep -o 'listening on ws://[^ ]*' "$out" 2>/dev/null | head -1 || true)
        if [[ -n $line ]]; then URL=${line#listening on }; return 0; fi
        kill -0 "$pid" 2>/dev/null || { echo "server $pid exited:" >&2; tail -20 "$out" >&2; return 1; }
        sleep 0.1
    done
    echo "server $pid did not print its address in ${secs}s" >&2; return 1
}

port_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

N_START=0
start_ringgate() { # [driver] [config file] — sets URL, SPID
    N_START=$((N_START + 1))
    local d=$TMP/rg$N_START; mkdir -p "$d/state"
    local cfg=()
    [[ -n ${2:-} ]] && cfg=(--config "$2")
    "$BIN/ringgate" run --port 0 --token "$TOKEN" --shards 1 --state-dir "$d/state" \
        --driver "${1:-auto}" "${cfg[@]}" >"$d/out" 2>"$d/err" &
    SPID=$!; PIDS+=("$SPID")
    wait_listening "$SPID" "$d/out" 20
}

start_echo() { # sets URL, SPID
    N_START=$((N_START + 1))
    local d=$TMP/echo$N_START; mkdir -p "$d"
    "${PIN[@]}" "$BIN/echo" --port 0 --threads 1 >"$d/out" 2>"$d/err" &
    SPID=$!; PIDS+=("$SPID")
    wait_listening "$SPID" "$d/out" 10
}

start_original() { # sets URL, SPID — own session/process group so its helper workers die with it
    N_START=$((N_START + 1))
    local d=$TMP/oc$N_START port i; mkdir -p "$d/home"
    port=$(free_port)
    HOME=$d/home OPENCLAW_CLIENT_HOME=$d/home setsid "${PIN[@]}" "$OC_DIR/bin/openclaw" gateway run --allow-unconfigured \
        --bind loopback --port "$port" --auth token --token "$TOKEN" >"$d/out" 2>&1 </dev/null &
    SPID=$!; PGIDS+=("$SPID")
    for i in $(seq 600); do
        if port_listens "$port"; then URL=ws://127.0.0.1:$port; return 0; fi
        kill -0 "$SPID" 2>/dev/null || { echo "original gateway exited:" >&2; tail -30 "$d/out" >&2; return 1; }
        sleep 0.1
    done
    echo "original gateway did not listen on $port within 60s" >&2; tail -30 "$d/out" >&2; return 1
}

# Percentage of all CPUs idle over 0.5 s (machine noise indicator, recorded with each run).
cpu_idle() {
    python3 - <<'PY'
import time
def snap():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return v[3] + v[4], sum(v)
i0, t0 = snap(); time.sleep(0.5); i1, t1 = snap()
print(f"{100.0 * (i1 - i0) / max(1, t1 - t0):.0f}")
PY
}

# --- one loadgen run -> one JSON line -----------------------------------------------------
# lg CASE SERVER RUN LIMIT_S SCENARIO ARGS...
lg() {
    local case=$1 server=$2 run=$3 limit=$4; shift 4
    local scen=$1; shift
    local line rc=0 out idle
    idle=$(cpu_idle)
    if (( WAIT_QUIET > 0 )); then
        local t0=$SECONDS
        while (( ${idle%.*} < 85 && SECONDS - t0 < WAIT_QUIET )); do idle=$(cpu_idle); done
    fi
    printf '  %-22s %-9s run %s (idle %3s%%) ... ' "$case" "$server" "$run" "${idle%.*}" >&2
    out=$(timeout --signal=INT --kill-after=5 "$limit" "${LG[@]}" "$scen" "$@" "${LGOPTS[@]}" 2>>"$LOG") || rc=$?
    line=$(printf '%s\n' "$out" | grep '^{' | tail -1 || true)
    echo "== $case $server $run rc=$rc: $scen $*" >>"$LOG"; printf '%s\n' "$out" >>"$LOG"
    if [[ -z $line ]]; then
        line="{\"scenario\":\"$scen\",\"lg_failed\":true,\"exit\":$rc}"
    fi
    python3 - "$case" "$server" "$run" "$line" "$idle" >>"$RESULTS" <<'PY'
import json, sys
case, server, run, line, idle = sys.argv[1:6]
d = json.loads(line)
print(json.dumps({"kind": "run", "case": case, "server": server, "run": int(run),
                  "cpu_idle_before_pct": float(idle), **d}))
PY
    python3 - "$line" >&2 <<'PY'
import json, sys
d = json.loads(sys.argv[1])
keys = ["handshakes_per_s", "req_per_s", "last_p50_us", "server_bytes_per_conn",
        "phase_b_req_per_s", "alive_at_end"]
print(" ".join(f"{k}={d[k]}" for k in keys if k in d) or "FAILED", d.get("errors") or "")
PY
}

say() { echo "[$(date +%T) +${SECONDS}s] $*" >&2; }
T=(--token "$TOKEN")
LIM=$((DUR + 25))

if [[ $PARTS == *original* ]]; then
RG_URL= OC_URL= EC_URL=
say "ringgate compare: token auth, servers on CPU $SERVER_CPU, loadgen on CPU $LOAD_CPU; log $LOG"
start_ringgate; RG_URL=$URL; RG_PID=$SPID
start_echo;     EC_URL=$URL; EC_PID=$SPID
say "starting the original gateway ($OC_DIR) ..."
start_original; OC_URL=$URL; OC_PID=$SPID
say "ringgate $RG_URL (pid $RG_PID), original $OC_URL (pid $OC_PID), echo $EC_URL (pid $EC_PID)"
sleep 2 # let the original finish its post-listen startup work


say "handshake (token only, concurrency 16)"
for r in $(seq "$RUNS"); do
    lg handshake-token ringgate "$r" $LIM handshake --url "$RG_URL" "${T[@]}" --concurrency 16 --duration "$DUR"
    lg handshake-token original "$r" $LIM handshake --url "$OC_URL" "${T[@]}" --concurrency 16 --duration "$DUR"
done

say "rpc last-heartbeat: closed loop 16x1, pipelined 16x16; raw echo for the ceiling"
for r in $(seq "$RUNS"); do
    for p in 1 16; do
        c=rpc-16x$p
        lg $c ringgate "$r" $LIM rpc --url "$RG_URL" "${T[@]}" --clients 16 --pipeline $p --method last-heartbeat --duration "$DUR"
        lg $c original "$r" $LIM rpc --url "$OC_URL" "${T[@]}" --clients 16 --pipeline $p --method last-heartbeat --duration "$DUR"
        lg $c echo "$r" $LIM rpc --raw --url "$EC_URL" --clients 16 --pipeline $p --duration "$DUR"
    done
    # ~125k req/s on the reference machine: latency at about half the 250k target
    lg rpc-16x2 ringgate "$r" $LIM rpc --url "$RG_URL" "${T[@]}" --clients 16 --pipeline 2 --method last-heartbeat --duration "$DUR"
done

say "broadcast: system-event -> presence to $BCAST_SUBS subscribers, $BCAST_ROUNDS rounds"
for r in $(seq "$RUNS"); do
    lg broadcast-$BCAST_SUBS ringgate "$r" 90 broadcast --url "$RG_URL" "${T[@]}" --subscribers "$BCAST_SUBS" --rounds "$BCAST_ROUNDS" --duration 30
    lg broadcast-$BCAST_SUBS original "$r" 90 broadcast --url "$OC_URL" "${T[@]}" --subscribers "$BCAST_SUBS" --rounds "$BCAST_ROUNDS" --duration 30
done

say "slow consumers: 16 healthy + 4 that never read, ${SLOW_DUR}s"
for r in $(seq "$RUNS"); do
    lg slow ringgate "$r" $((SLOW_DUR + 40)) slow --url "$RG_URL" "${T[@]}" --clients 16 --slow 4 --duration "$SLOW_DUR"
    lg slow original "$r" $((SLOW_DUR + 40)) slow --url "$OC_URL" "${T[@]}" --clients 16 --slow 4 --duration "$SLOW_DUR"
done

# Last on this original instance: device-signed connects create pairing state.
say "handshake with device signature (original only; ringgate answers NOT_PAIRED until pairing exists)"
for r in $(seq "$RUNS"); do
    lg handshake-device original "$r" $LIM handshake --url "$OC_URL" "${T[@]}" --concurrency 16 --duration "$DUR" --device
done
lg handshake-device ringgate 1 $LIM handshake --url "$RG_URL" "${T[@]}" --concurrency 16 --duration 2 --device

stop_server "$OC_PID"; stop_server "$RG_PID"; stop_server "$EC_PID"

# idle: a fresh server per run, so VmRSS growth is only the held connections
idle_run() { # case server run clients
    local case=$1 server=$2 run=$3 n=$4 raw=()
    case $server in
        ringgate) start_ringgate ;;
        original) start_original; sleep 3 ;;
        echo)     start_echo; raw=(--raw) ;;
    esac
    local rate=1000; [[ $server == original ]] && rate=400 # faster overruns its handshake limits
    lg "$case" "$server" "$run" $((n / rate + IDLE_HOLD + 60)) idle --url "$URL" "${T[@]}" "${raw[@]}" \
        --clients "$n" --rate $rate --hold "$IDLE_HOLD" --pid "$SPID" --duration 10
    stop_server "$SPID"
}
say "idle: $IDLE_CLIENTS connections held ${IDLE_HOLD}s, fresh server per run"
for r in $(seq "$RUNS"); do
    idle_run idle-$IDLE_CLIENTS ringgate "$r" "$IDLE_CLIENTS"
    idle_run idle-$IDLE_CLIENTS original "$r" "$IDLE_CLIENTS"
    idle_run idle-$IDLE_CLIENTS echo "$r" "$IDLE_CLIENTS"
done

if [[ $SCALING == 1 ]]; then
    say "scaling: idle 1000 / 10000 / 19500, broadcast 100 / 1000 / 10000"
    for n in 1000 10000 19500; do
        for r in $(seq "$RUNS"); do
            idle_run idle-$n ringgate "$r" $n
            idle_run idle-$n original "$r" $n
        done
    done
    start_ringgate; RG_URL=$URL; RG_PID=$SPID
    start_original; OC_URL=$URL; OC_PID=$SPID; sleep 2
    for n in 100 1000 10000; do
        rounds=$BCAST_ROUNDS; (( n >= 10000 )) && rounds=30
        for r in $(seq "$RUNS"); do
            lg broadcast-$n ringgate "$r" 120 broadcast --url "$RG_URL" "${T[@]}" --subscribers $n --rounds $rounds --duration 30
            lg broadcast-$n original "$r" 120 broadcast --url "$OC_URL" "${T[@]}" --subscribers $n --rounds $rounds --duration 30
        done
    done
    stop_server "$OC_PID"; stop_server "$RG_PID"
fi

fi

# --- drivers: the same ringgate on each runtime (one shard, pinned to CPU 0) -------------
if [[ $PARTS == *drivers* ]]; then
    DRIVERS=(io_uring epoll glommio)
    say "drivers: ${DRIVERS[*]} — handshake, rpc 16x1 / 16x16, broadcast to $BCAST_SUBS, idle $IDLE_CLIENTS; $RUNS interleaved runs"
    for r in $(seq "$RUNS"); do
        for drv in "${DRIVERS[@]}"; do
            start_ringgate "$drv"; DU=$URL; DP=$SPID
            lg drv-handshake "$drv" "$r" $LIM handshake --url "$DU" "${T[@]}" --concurrency 16 --duration "$DUR"
            for p in 1 16; do
                lg drv-rpc-16x$p "$drv" "$r" $LIM rpc --url "$DU" "${T[@]}" --clients 16 --pipeline $p --method last-heartbeat --duration "$DUR"
            done
            lg drv-broadcast-$BCAST_SUBS "$drv" "$r" 90 broadcast --url "$DU" "${T[@]}" --subscribers "$BCAST_SUBS" --rounds "$BCAST_ROUNDS" --duration 30
            stop_server "$DP"
            # idle on a fresh server, so VmRSS growth is only the held connections
            start_ringgate "$drv"; DU=$URL; DP=$SPID
            lg drv-idle-$IDLE_CLIENTS "$drv" "$r" $((IDLE_CLIENTS / 1000 + IDLE_HOLD + 60)) idle --url "$DU" "${T[@]}" \
                --clients "$IDLE_CLIENTS" --rate 1000 --hold "$IDLE_HOLD" --pid "$DP" --duration 10
            stop_server "$DP"
        done
    done
fi

# --- metrics: the cost of recording (diagnostics.enabled true vs false), one shard ---------
# With metrics on, the endpoint is also scraped once a second during every run (a scrape
# interval 15-30 times shorter than the original's docs suggest), so its cost is included.
if [[ $PARTS == *metrics* ]]; then
    OFF_CFG=$TMP/metrics-off.json5; echo '{diagnostics: {enabled: false}}' >"$OFF_CFG"
    say "metrics: on (scraped every 1 s) vs off — rpc 16x1 / 16x16, broadcast to $BCAST_SUBS; $RUNS interleaved runs"
    for r in $(seq "$RUNS"); do
        for m in metrics-on metrics-off; do
            if [[ $m == metrics-on ]]; then start_ringgate auto; else start_ringgate auto "$OFF_CFG"; fi
            DU=$URL; DP=$SPID; SCRAPER=
            if [[ $m == metrics-on ]]; then
                ( while sleep 1; do curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" \
                    "http://${DU#ws://}/api/diagnostics/prometheus"; done ) &
                SCRAPER=$!
            fi
            for p in 1 16; do
                lg met-rpc-16x$p "$m" "$r" $LIM rpc --url "$DU" "${T[@]}" --clients 16 --pipeline $p --method last-heartbeat --duration "$DUR"
            done
            lg met-broadcast-$BCAST_SUBS "$m" "$r" 90 broadcast --url "$DU" "${T[@]}" --subscribers "$BCAST_SUBS" --rounds "$BCAST_ROUNDS" --duration 30
            if [[ -n $SCRAPER ]]; then kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; fi
            stop_server "$DP"
        done
    done
fi

# --- summary ------------------------------------------------------------------------------
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
path = sys.argv[1]
runs = [json.loads(l) for l in open(path) if l.strip()]
runs = [r for r in runs if r.get("kind") == "run"]

# case prefix -> metrics (name, key, "hi" if higher is better else "lo")
METRICS = {
    "handshake": [("handshakes/s", "handshakes_per_s", "hi"), ("p50 µs", "latency_p50_us", "lo"),
                  ("p99 µs", "latency_p99_us", "lo")],
    "rpc": [("req/s", "req_per_s", "hi"), ("p50 µs", "latency_p50_us", "lo"),
            ("p99 µs", "latency_p99_us", "lo")],
    "broadcast": [("last p50 µs", "last_p50_us", "lo"), ("last p99 µs", "last_p99_us", "lo"),
                  ("first p50 µs", "first_p50_us", "lo"), ("ack p50 µs", "ack_p50_us", "lo"),
                  ("deliveries/s", "deliveries_per_s", "hi"),
                  ("deliv/s in fan-out", "deliveries_per_fanout_s", "hi")],
    "idle": [("server B/conn", "server_bytes_per_conn", "lo"), ("alive at end", "alive_at_end", "hi"),
             ("connects/s", "connect_rate_per_s", "hi")],
    "slow": [("healthy req/s A", "phase_a_req_per_s", "hi"), ("healthy req/s B", "phase_b_req_per_s", "hi"),
             ("healthy p99 µs A", "phase_a_p99_us", "lo"), ("healthy p99 µs B", "phase_b_p99_us", "lo"),
             ("MB drained/slow", "slow_mb_drained", "lo")],
}
for r in runs:
    if "slow_bytes_drained" in r and r.get("slow_clients"):
        r["slow_mb_drained"] = r["slow_bytes_drained"] / r["slow_clients"] / 1e6

cases = []
for r in runs:
    if r["case"] not in cases and not r["case"].startswith(("drv-", "met-")):
        cases.append(r["case"])

def med(case, server, key):
    v = [r[key] for r in runs if r["case"] == case and r["server"] == server
         and key in r and not r.get("lg_failed") and r.get("connected", 1) != 0
         and r.get("handshakes", 1) != 0]
    return (statistics.median(v), len(v)) if v else (None, 0)

def fmt(x):
    if x is None: return "-"
    if abs(x) >= 100: return f"{x:,.0f}"
    return f"{x:.3g}"

summ = []
hdr = f"{'case':<18} {'metric':<20} {'ringgate':>12} {'original':>12} {'rg/orig':>9} {'echo':>12} {'rg/echo':>8}  n"
print()
print(f"medians over runs (ratios: ringgate / other; for µs and B/conn lower is better)")
print(hdr); print("-" * len(hdr))
for case in cases:
    pre = case.split("-")[0]
    for name, key, better in METRICS.get(pre, []):
        rg, n1 = med(case, "ringgate", key)
        oc, n2 = med(case, "original", key)
        ec, n3 = med(case, "echo", key)
        if rg is None and oc is None: continue
        ro = rg / oc if rg is not None and oc else None
        re = rg / ec if rg is not None and ec else None
        print(f"{case:<18} {name:<20} {fmt(rg):>12} {fmt(oc):>12} "
              f"{(f'{ro:.3g}x' if ro is not None else '-'):>9} {fmt(ec):>12} "
              f"{(f'{re:.0%}' if re is not None else '-'):>8}  {n1}/{n2}/{n3}")
        summ.append({"kind": "summary", "case": case, "metric": key, "better": better,
                     "ringgate": rg, "original": oc, "echo": ec,
                     "ratio_ringgate_original": ro, "ratio_ringgate_echo": re,
                     "runs": {"ringgate": n1, "original": n2, "echo": n3}})
drv_cases = []
for r in runs:
    if r["case"].startswith("drv-") and r["case"] not in drv_cases:
        drv_cases.append(r["case"])
if drv_cases:
    DRV = ["io_uring", "epoll", "glommio"]
    print()
    print("drivers: medians over runs; server CPU µs per unit of work beside each; ratios vs io_uring")
    hdr = f"{'case':<20} {'metric':<20} " + " ".join(f"{d:>12}" for d in DRV) + f" {'epoll/uring':>11} {'glommio/uring':>13}"
    print(hdr); print("-" * len(hdr))
    for case in drv_cases:
        pre = case.split("-")[1]
        cpu_key = {"handshake": "server_cpu_us_per_handshake", "rpc": "server_cpu_us_per_request",
                   "broadcast": "server_cpu_us_per_delivery"}.get(pre)
        metrics = list(METRICS.get(pre, []))
        if cpu_key:
            metrics.append(("server CPU µs/unit", cpu_key, "lo"))
        metrics.append(("server CPU %", "server_cpu_pct", "lo"))
        for name, key, better in metrics:
            vals = [med(case, d, key) for d in DRV]
            base = vals[0][0]
            if all(v[0] is None for v in vals): continue
            rat = [f"{v[0] / base:.3g}x" if v[0] is not None and base else "-" for v in vals[1:]]
            print(f"{case:<20} {name:<20} " + " ".join(f"{fmt(v[0]):>12}" for v in vals)
                  + f" {rat[0]:>11} {rat[1]:>13}  n={'/'.join(str(v[1]) for v in vals)}")
            summ.append({"kind": "summary", "case": case, "metric": key, "better": better,
                         **{d: v[0] for d, v in zip(DRV, vals)},
                         "runs": {d: v[1] for d, v in zip(DRV, vals)}})

met_cases = []
for r in runs:
    if r["case"].startswith("met-") and r["case"] not in met_cases:
        met_cases.append(r["case"])
if met_cases:
    SRV = ["metrics-on", "metrics-off"]
    print()
    print("metrics: medians over runs; server CPU µs per unit of work beside each; ratio on / off")
    hdr = f"{'case':<20} {'metric':<20} " + " ".join(f"{d:>12}" for d in SRV) + f" {'on/off':>8}"
    print(hdr); print("-" * len(hdr))
    for case in met_cases:
        pre = case.split("-")[1]
        cpu_key = {"rpc": "server_cpu_us_per_request", "broadcast": "server_cpu_us_per_delivery"}.get(pre)
        metrics = list(METRICS.get(pre, []))
        if cpu_key:
            metrics.append(("server CPU µs/unit", cpu_key, "lo"))
        for name, key, better in metrics:
            vals = [med(case, d, key) for d in SRV]
            if any(v[0] is None for v in vals): continue
            rat = vals[0][0] / vals[1][0] if vals[1][0] else None
            print(f"{case:<20} {name:<20} " + " ".join(f"{fmt(v[0]):>12}" for v in vals)
                  + f" {(f'{rat:.3f}x' if rat is not None else '-'):>8}  n={'/'.join(str(v[1]) for v in vals)}")
            summ.append({"kind": "summary", "case": case, "metric": key, "better": better,
                         **{d: v[0] for d, v in zip(SRV, vals)},
                         "runs": {d: v[1] for d, v in zip(SRV, vals)}})

errs = {}
for r in runs:
    if r.get("errors") or r.get("lg_failed"):
        errs.setdefault((r["case"], r["server"]), []).append(r.get("errors") or {"loadgen_exit": r.get("exit")})
if errs:
    print("\nerrors by run:")
    for (c, s), e in errs.items():
        print(f"  {c} {s}: {e}")
outs = {}
for r in runs:
    if "slow_outcome" in r:
        outs.setdefault(r["server"], []).append(r["slow_outcome"])
if outs:
    print("\nslow-client outcomes:", outs)
with open(path, "a") as f:
    for s in summ:
        f.write(json.dumps(s) + "\n")
PY
say "results: $RESULTS (per-run lines + summary lines), loadgen output: $LOG"
