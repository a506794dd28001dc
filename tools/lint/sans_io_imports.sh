#!/usr/bin/env bash
# The sans-IO owners (see src/effects.rs) decide and push effects; only the shard's driver
# (src/shard/drive.rs) does IO. So these modules must not reach the shard, the bus or the
# runtime. The list holds the modules migrated so far and grows until it covers every domain
# folder (chat, approvals, cron, nodes, channels, agent).
set -euo pipefail
cd "$(dirname "$0")/../.."
SANS_IO=(
  src/effects.rs
  src/placement.rs
  src/approvals
  src/channels/sends.rs
  src/agent/catalog.rs
  src/store/sessions_summary.rs
  src/cron
  src/nodes/invoke.rs
  src/chat/runs.rs
)
bad=$(grep -rnE 'crate::(shard|bus)\b|\bmonoio::|\bShardCtx\b' "${SANS_IO[@]}" \
  | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$bad" ]; then
  echo "sans-IO modules must not use the shard, the bus or the runtime (apply effects in src/shard/drive.rs):"
  echo "$bad"
  exit 1
fi
echo "sans-IO imports: ok (${#SANS_IO[@]} modules)"
