#!/usr/bin/env bash
# Takes the README's metrics screenshots (docs/img/): a two-shard gateway under load
# (loadgen rpc + broadcast), scraped by a real Prometheus every second; then
#   - docs/img/prometheus-dashboard.png: Prometheus's graph page with four of the Grafana
#     dashboard's queries (Grafana itself is not packaged in Debian);
#   - docs/img/ringgate-top.png: `ringgate top --once`, rendered as a terminal would.
# Needs: target/release/{ringgate,loadgen}, prometheus, chromium (make test installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/img}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir -p "$OUT" "$TMP/state"
TOKEN=shot-$RANDOM
target/release/ringgate run --port 0 --token "$TOKEN" --shards 2 --state-dir "$TMP/state" >"$TMP/rg.out" 2>"$TMP/rg.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$TMP/rg.out" && break; sleep 0.1; done
ADDR=$(grep -ao "ws://[0-9.:]*" "$TMP/rg.out" | head -1); ADDR=${ADDR#ws://}
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo -n "$TOKEN" >"$TMP/token"
cat >"$TMP/prometheus.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: openclaw
    metrics_path: /api/diagnostics/prometheus
    authorization: {credentials_file: $TMP/token}
    static_configs: [{targets: ["$ADDR"]}]
YML
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PPORT" >"$TMP/prom.log" 2>&1 &
PIDS+=($!)
# Load for ~70 s: pipelined rpc, a broadcast fan-out, and a stream of fresh handshakes.
target/release/loadgen rpc --url "ws://$ADDR/" --token "$TOKEN" --clients 16 --pipeline 2 \
    --method health --duration 70 --no-pin >/dev/null 2>&1 &
PIDS+=($!)
target/release/loadgen broadcast --url "ws://$ADDR/" --token "$TOKEN" --subscribers 500 \
    --rounds 100000 --duration 70 --no-pin >/dev/null 2>&1 &
PIDS+=($!)
target/release/loadgen handshake --url "ws://$ADDR/" --token "$TOKEN" --concurrency 2 \
    --duration 70 --no-pin >/dev/null 2>&1 &
PIDS+=($!)
sleep 45
target/release/ringgate top --url "http://$ADDR" --token "$TOKEN" --once --interval 3 >"$TMP/top.txt"
python3 - "$TMP/top.txt" "$TMP/top.html" <<'PY'
import html, sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(
    "<html><body style='margin:0;background:#1e1e1e'><pre style='color:#d4d4d4;"
    "font:14px DejaVu Sans Mono,monospace;padding:14px;margin:0'>" + html.escape(text) + "</pre></body></html>")
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1240,330 \
    --screenshot="$OUT/ringgate-top.png" "file://$TMP/top.html" 2>/dev/null
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
Q=(
  'sum by (shard) (rate(ringgate_frames_received_total[10s]))'
  'histogram_quantile(0.99, sum by (le) (rate(openclaw_gateway_rpc_first_response_seconds_bucket[10s])))'
  'sum by (shard) (rate(ringgate_event_deliveries_total[10s]))'
  'sum by (role, shard) (ringgate_connections{phase="open"})'
)
URL="http://127.0.0.1:$PPORT/graph?"
for i in "${!Q[@]}"; do
  URL+="g$i.expr=$(enc "${Q[$i]}")&g$i.tab=0&g$i.range_input=1m&"
done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2900 \
    --virtual-time-budget=15000 --screenshot="$OUT/prometheus-dashboard.png" "$URL" 2>/dev/null
echo "wrote $OUT/ringgate-top.png and $OUT/prometheus-dashboard.png"
