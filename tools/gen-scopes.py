#!/usr/bin/env python3
"""Regenerates src/proto/scope_table.rs from Appendix A of the protocol reference.

Usage: python3 tools/gen-scopes.py ../shared/protocol/openclaw-gateway-v4.md > src/proto/scope_table.rs
"""
import re
import sys

SCOPES = {
    "operator.admin": "Admin", "operator.read": "Read", "operator.write": "Write",
    "operator.approvals": "Approvals", "operator.pairing": "Pairing",
    "operator.questions": "Questions", "operator.talk": "Talk",
    "operator.sessions.write": "SessionsWrite",
}

lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("## Appendix A"))
rows = []
for l in lines[start:]:
    m = re.match(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", l)
    if not m:
        continue
    name, scope, flags = (g.strip() for g in m.groups())
    if scope.startswith("`"):
        req = "Req::Scope(Scope::%s)" % SCOPES[scope.strip("`")]
    elif scope.startswith("dynamic"):
        req = "Req::Dynamic"
    elif "node" in scope:
        req = "Req::NodeRole"
    else:
        raise SystemExit("unknown scope cell: " + scope)
    f = []
    if "not advertised" in flags:
        f.append("HIDDEN")
    if "startup" in flags:
        f.append("STARTUP")
    if "control-plane write" in flags:
        f.append("CP_WRITE")
    rows.append((name, req, " | ".join(f) if f else "0"))
assert len({r[0] for r in rows}) == len(rows), "duplicate method"
print("//! Generated from Appendix A of the OpenClaw gateway v4 protocol reference (openclaw 2026.9.6):")
print("//! every core method and the scope it requires. Data, not logic: `scopes.rs` interprets it.")
print("//! Regenerate with `tools/gen-scopes.py` if the reference changes.")
print()
print("use super::scopes::{MethodSpec, Req, Scope, CP_WRITE, HIDDEN, STARTUP};")
print()
print("/// All %d core methods, in the reference's order." % len(rows))
print("pub static CORE_METHODS: &[MethodSpec] = &[")
for n, r, f in rows:
    print('    MethodSpec { name: "%s", req: %s, flags: %s },' % (n, r, f))
print("];")
