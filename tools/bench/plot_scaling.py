#!/usr/bin/env python3
"""Plots how ringgate's cost grows with connections, beside the original gateway's.

    python3 tools/bench/plot_scaling.py [tools/bench/scaling.json] [tools/bench/scaling.png]

The data file lists one series per server build, each with points measured by
`tools/loadgen` (see BENCHMARKS.md for the commands):

    {"series": [{"name": "...",
                 "rss_per_conn": [[connections, bytes_per_connection], ...],
                 "broadcast_last_p50_ms": [[subscribers, milliseconds], ...]}]}

Needs matplotlib (`pip install matplotlib`).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "tools/bench/scaling.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "tools/bench/scaling.png"
    with open(src) as f:
        data = json.load(f)
    fig, (mem, fan) = plt.subplots(1, 2, figsize=(12, 4.8))
    for s in data["series"]:
        style = dict(marker="o", label=s["name"], linestyle=s.get("linestyle", "-"))
        if s.get("rss_per_conn"):
            x, y = zip(*s["rss_per_conn"])
            mem.plot(x, [b / 1024 for b in y], **style)
        if s.get("broadcast_last_p50_ms"):
            x, y = zip(*s["broadcast_last_p50_ms"])
            fan.plot(x, y, **style)
    mem.set_title("Idle authenticated connections: server RSS growth / N")
    mem.set_xlabel("connections held")
    mem.set_ylabel("KiB per connection (all-in)")
    mem.set_xscale("log")
    mem.set_yscale("log")
    mem.axhline(2, color="grey", linewidth=0.8, linestyle=":")
    mem.grid(True, which="both", alpha=0.3)
    mem.legend()
    fan.set_title("Broadcast to N subscribers: last delivery p50")
    fan.set_xlabel("subscribers")
    fan.set_ylabel("ms (send → last subscriber has it)")
    fan.set_xscale("log")
    fan.set_yscale("log")
    fan.grid(True, which="both", alpha=0.3)
    fan.legend()
    fig.suptitle(data.get("title", "ringgate vs the original gateway"), fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
