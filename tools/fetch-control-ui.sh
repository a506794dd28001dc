#!/usr/bin/env bash
# Fetches the Control UI (the web dashboard) that ringgate serves, from the pinned OpenClaw npm
# package, into DIR (default target/control-ui): only its dist/control-ui directory is kept.
# Idempotent: does nothing when DIR already holds that version. Needs npm (Node.js).
# Usage: tools/fetch-control-ui.sh [DIR]
set -euo pipefail
VERSION=${OPENCLAW_VERSION:-2026.9.6}
dir=${1:-target/control-ui}
stamp="$dir/.openclaw-$VERSION"
if [[ -f $stamp && -f $dir/index.html ]]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-control-ui: npm not found; the dashboard will not be served (install Node.js, or set gateway.controlUi.root)" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the Control UI of openclaw@$VERSION (once) into $dir"
( cd "$tmp" && npm pack --silent "openclaw@$VERSION" >/dev/null )
tar -xzf "$tmp"/openclaw-*.tgz -C "$tmp" package/dist/control-ui
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$tmp/package/dist/control-ui" "$dir"
touch "$stamp"
echo "Control UI ready in $dir"
