#!/usr/bin/env bash
# The sans-IO owners (see src/effects.rs) decide and push effects; only the shard's driver
# (src/shard/drive.rs) does IO. So the domain folders, and the modules below the shards, must
# not reach the shard, the bus or the runtime.
# And only the runtime seam (src/rt/) names a runtime crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
SANS_IO=(
  src/effects.rs
  src/placement.rs
  src/fingerprint.rs
  src/chat
  src/approvals
  src/cron
  src/nodes
  src/channels
  src/agent
  src/store
  src/proto
  src/shard/subs.rs
  src/http/api
  src/hooks
  src/worker
  src/cluster/members.rs
  src/cluster/wire.rs
)
bad=$(grep -rnE 'crate::(shard|bus)\b|\bmonoio::|\bShardCtx\b' "${SANS_IO[@]}" \
  | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$bad" ]; then
  echo "sans-IO modules must not use the shard, the bus or the runtime (apply effects in src/shard/drive.rs):"
  echo "$bad"
  exit 1
fi
echo "sans-IO imports: ok (${#SANS_IO[@]} modules)"

# The runtime seam: only src/rt/ names a runtime crate (src/rt/mod.rs says why).
bad=$(grep -rnE '\b(monoio|glommio)::|use (monoio|glommio)\b' src --include='*.rs' \
  | grep -v '^src/rt/' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$bad" ]; then
  echo "only src/rt/ may name monoio or glommio (go through crate::rt):"
  echo "$bad"
  exit 1
fi
echo "runtime seam: ok (no runtime crate named outside src/rt/)"

# The cluster link's runtime: Tokio and async-nats run on the link thread only.
bad=$(grep -rnE '\b(tokio|async_nats)::|use (tokio|async_nats)\b' src --include='*.rs' \
  | grep -vE '^src/cluster/(link|record).rs' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$bad" ]; then
  echo "only src/cluster/link.rs and record.rs may name tokio or async_nats (the link thread's runtime):"
  echo "$bad"
  exit 1
fi
echo "cluster link: ok (tokio and async-nats only on the link thread)"
