#!/usr/bin/env python3
# Writes tools/grafana/ringgate.json (the Grafana dashboard): python3 tools/grafana/gen_dashboard.py > tools/grafana/ringgate.json
# Every query is checked against a real Prometheus by tests/metrics_prometheus.rs.
import json
panels=[]; y=0; pid=1
def row(title):
    global y,pid
    panels.append({"type":"row","title":title,"collapsed":False,"id":pid,"gridPos":{"h":1,"w":24,"x":0,"y":y},"panels":[]})
    pid+=1; y+=1
def ts(title, targets, unit="short", x=0, w=8, h=8, desc=""):
    global pid
    p={"type":"timeseries","title":title,"id":pid,"datasource":{"type":"prometheus","uid":"${datasource}"},
       "gridPos":{"h":h,"w":w,"x":x,"y":y},"description":desc,
       "fieldConfig":{"defaults":{"unit":unit,"custom":{"lineWidth":1,"fillOpacity":10}},"overrides":[]},
       "options":{"legend":{"displayMode":"list","placement":"bottom"},"tooltip":{"mode":"multi"}},
       "targets":[{"refId":chr(65+i),"expr":e,"legendFormat":lf,"datasource":{"type":"prometheus","uid":"${datasource}"}} for i,(e,lf) in enumerate(targets)]}
    panels.append(p); pid+=1
def line(items, h=8):
    global y
    w=24//len(items); x=0
    for it in items:
        ts(*it[:3], x=x, w=w, h=h, desc=it[3] if len(it)>3 else "")
        x+=w
    y+=h
J='job=~"$job"'
R='$__rate_interval'
row("Connections")
line([
 ("Open connections by role", [(f'sum by (role) (ringgate_connections{{{J},phase="open"}})',"{{role}}")], "short"),
 ("Handshakes/s by outcome", [(f'sum by (outcome) (rate(ringgate_handshakes_total{{{J}}}[{R}]))',"{{outcome}}")], "ops"),
 ("Refusals/s by reason", [(f'sum by (reason) (rate(ringgate_handshake_refusals_total{{{J}}}[{R}]))',"handshake {{reason}}"),(f'sum by (reason) (rate(ringgate_preauth_refusals_total{{{J}}}[{R}]))',"pre-auth {{reason}}")], "ops"),
])
row("Throughput")
line([
 ("RPC requests/s by method", [(f'sum by (method) (rate(openclaw_gateway_rpc_requests_total{{{J}}}[{R}]))',"{{method}}")], "reqps"),
 ("Frames/s", [(f'sum(rate(ringgate_frames_received_total{{{J}}}[{R}]))',"in"),(f'sum(rate(ringgate_frames_sent_total{{{J}}}[{R}]))',"out")], "ops"),
 ("Bytes/s", [(f'sum(rate(ringgate_received_bytes_total{{{J}}}[{R}]))',"in"),(f'sum(rate(ringgate_sent_bytes_total{{{J}}}[{R}]))',"out")], "Bps"),
])
row("Latency")
line([
 ("RPC first response p50/p99", [(f'histogram_quantile(0.5, sum by (le) (rate(openclaw_gateway_rpc_first_response_seconds_bucket{{{J}}}[{R}])))',"p50"),(f'histogram_quantile(0.99, sum by (le) (rate(openclaw_gateway_rpc_first_response_seconds_bucket{{{J}}}[{R}])))',"p99")], "s"),
 ("RPC handler p99 by method", [(f'histogram_quantile(0.99, sum by (le, method) (rate(openclaw_gateway_rpc_handler_seconds_bucket{{{J}}}[{R}])))',"{{method}}")], "s"),
 ("Event-loop delay by shard", [(f'max by (shard) (ringgate_loop_delay_p99_seconds{{{J}}})',"p99 shard {{shard}}"),(f'max by (shard) (ringgate_loop_delay_max_seconds{{{J}}})',"max shard {{shard}}")], "s"),
])
line([
 ("RPC outcomes/s", [(f'sum by (phase, outcome) (rate(openclaw_gateway_rpc_outcomes_total{{{J}}}[{R}]))',"{{phase}} {{outcome}}")], "ops"),
 ("Agent runs/s by outcome", [(f'sum by (outcome) (rate(openclaw_run_completed_total{{{J}}}[{R}]))',"{{outcome}}")], "ops"),
 ("Agent run p95", [(f'histogram_quantile(0.95, sum by (le, model) (rate(openclaw_run_duration_seconds_bucket{{{J}}}[{R}])))',"{{model}}")], "s"),
])
row("Fan-out")
line([
 ("Events fanned out/s by shard", [(f'sum by (shard) (rate(ringgate_events_fanned_out_total{{{J}}}[{R}]))',"shard {{shard}}")], "ops"),
 ("Deliveries/s by shard", [(f'sum by (shard) (rate(ringgate_event_deliveries_total{{{J}}}[{R}]))',"shard {{shard}}")], "ops"),
 ("Deliveries per event", [(f'sum(rate(ringgate_event_deliveries_total{{{J}}}[{R}])) / sum(rate(ringgate_events_fanned_out_total{{{J}}}[{R}]))',"deliveries/event")], "short"),
])
row("Backpressure")
line([
 ("Outbox bytes by shard", [(f'sum by (shard) (ringgate_outbox_bytes{{{J}}})',"shard {{shard}}")], "bytes"),
 ("Slow consumers", [(f'sum by (action) (rate(ringgate_slow_consumer_events_total{{{J}}}[{R}]))',"events {{action}}/s"),(f'sum by (cause) (rate(ringgate_slow_consumer_closes_total{{{J}}}[{R}]))',"closes ({{cause}})/s")], "ops"),
 ("Closes/s by code", [(f'sum by (code) (rate(ringgate_closes_total{{{J}}}[{R}]))',"{{code}}")], "ops"),
])
line([
 ("Bus inbox depth by shard", [(f'sum by (shard) (ringgate_bus_inbox_messages{{{J}}})',"inbox {{shard}}"),(f'sum by (shard) (ringgate_bus_overflow_messages{{{J}}})',"overflow held by {{shard}}")], "short"),
 ("Bus inbox full/s", [(f'sum by (shard) (rate(ringgate_bus_inbox_full_total{{{J}}}[{R}]))',"shard {{shard}}")], "ops"),
 ("node.invoke", [(f'sum(ringgate_node_invokes_pending{{{J}}})',"pending"),(f'sum by (outcome) (rate(ringgate_node_invokes_total{{{J}}}[{R}]))',"{{outcome}}/s")], "short"),
])
row("Store")
line([
 ("Store queue depth", [(f'sum(ringgate_store_queue_depth{{{J}}})',"queued ops")], "short"),
 ("Group commit p50/p99 (fsync)", [(f'histogram_quantile(0.5, sum by (le) (rate(ringgate_store_commit_seconds_bucket{{{J}}}[{R}])))',"p50"),(f'histogram_quantile(0.99, sum by (le) (rate(ringgate_store_commit_seconds_bucket{{{J}}}[{R}])))',"p99")], "s"),
 ("Ops per commit", [(f'sum(rate(ringgate_store_batch_size_sum{{{J}}}[{R}])) / sum(rate(ringgate_store_batch_size_count{{{J}}}[{R}]))',"mean"),(f'sum(rate(ringgate_store_failed_commits_total{{{J}}}[{R}]))',"failed commits/s")], "short"),
])
row("Per-shard balance")
line([
 ("Busy fraction by shard", [(f'max by (shard) (ringgate_loop_busy_ratio{{{J}}})',"shard {{shard}}")], "percentunit"),
 ("Connections by shard", [(f'sum by (shard) (ringgate_connections{{{J}}})',"shard {{shard}}")], "short"),
 ("Frames in/s by shard", [(f'sum by (shard) (rate(ringgate_frames_received_total{{{J}}}[{R}]))',"shard {{shard}}")], "ops"),
 ("Shards up", [(f'sum by (shard) (ringgate_shard_up{{{J}}})',"shard {{shard}}")], "short"),
])
row("Process and models")
line([
 ("Memory", [(f'max by (kind) (openclaw_memory_bytes{{{J}}})',"{{kind}}")], "bytes"),
 ("File descriptors", [(f'max(ringgate_open_fds{{{J}}})',"open"),(f'max(ringgate_max_fds{{{J}}})',"limit")], "short"),
 ("CPU cores", [(f'max(ringgate_process_cpu_cores{{{J}}})',"process")], "short"),
 ("Model tokens/s", [(f'sum by (provider, token_type) (rate(openclaw_model_tokens_total{{{J}}}[{R}]))',"{{provider}} {{token_type}}")], "short"),
])
d={
 "__inputs":[{"name":"DS_PROMETHEUS","label":"Prometheus","type":"datasource","pluginId":"prometheus","pluginName":"Prometheus"}],
 "__requires":[{"type":"grafana","id":"grafana","name":"Grafana","version":"10.0.0"},{"type":"datasource","id":"prometheus","name":"Prometheus","version":"1.0.0"},{"type":"panel","id":"timeseries","name":"Time series","version":""}],
 "title":"ringgate","uid":"ringgate-gateway","tags":["ringgate","openclaw"],"timezone":"browser","schemaVersion":39,"version":1,
 "refresh":"10s","time":{"from":"now-1h","to":"now"},"editable":True,"graphTooltip":1,
 "description":"ringgate (OpenClaw gateway) per-shard metrics from GET /api/diagnostics/prometheus. Rows: connections, throughput, latency, fan-out, backpressure, store, per-shard balance, process.",
 "templating":{"list":[
   {"name":"datasource","type":"datasource","query":"prometheus","label":"Prometheus","current":{}},
   {"name":"job","type":"query","label":"Job","datasource":{"type":"prometheus","uid":"${datasource}"},"query":{"query":"label_values(ringgate_build_info, job)","refId":"job"},"definition":"label_values(ringgate_build_info, job)","includeAll":True,"multi":True,"allValue":".*","current":{"text":"All","value":"$__all"},"refresh":2}
 ]},
 "annotations":{"list":[]},
 "panels":panels}
print(json.dumps(d, indent=2))
