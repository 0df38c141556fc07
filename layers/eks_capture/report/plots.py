"""Timeline plots as inline SVG, drawn with matplotlib.

Why matplotlib's SVG backend: the report must open offline, from an e-mail or an air-gapped laptop,
years later. SVG needs no script at all (so nothing to inline, no console errors, nothing a browser
update can break), is searchable text, scales for print, and matplotlib is the best-kept plotting
library in Python's scientific stack. What it gives up (hover tooltips, zoom) matters little for five
per-second series that an SRE reads against two marks; Wireshark is where one zooms in.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime

import matplotlib
import matplotlib.dates as mdates
from matplotlib.figure import Figure

from eks_capture.report.timelines import LABELS, SERIES, NodeTimeline

COLORS = {
    "packets": "#1f77b4",
    "retransmissions": "#d62728",
    "resets": "#9467bd",
    "unanswered_syns": "#ff7f0e",
    "dns_failures": "#8c564b",
}


#: At most this many points per line: longer captures are shown as rates averaged over a few seconds.
MAX_POINTS = 1200


def _time(second: int) -> datetime:
    return datetime.fromtimestamp(second, tz=UTC)


def rates(counts: Counter[int], first: int, last: int, step: int) -> list[float]:
    """Per-second rates over [first, last], averaged over ``step``-second buckets."""
    return [
        sum(counts.get(s, 0) for s in range(start, start + step)) / step
        for start in range(first, last + 1, step)
    ]


def timeline_svg(
    timeline: NodeTimeline,
    span: tuple[int, int],
    *,
    alarm: datetime | None,
    window: tuple[datetime, datetime] | None,
    alarm_label: str = "alarm",
) -> str:
    """Five stacked per-second series of one node over ``span`` (epoch seconds), as an inline <svg>."""
    first, last = span
    step = -(-(last - first + 1) // MAX_POINTS)
    times = [_time(s) for s in range(first, last + 1, step)]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "eks-capture"}):
        figure = Figure(figsize=(10, 7.5), layout="constrained")
        axes = figure.subplots(len(SERIES), 1, sharex=True)
        for ax, name in zip(axes, SERIES, strict=True):
            counts = timeline.series(name)
            values = rates(counts, first, last, step)
            ax.step(times, values, where="post", color=COLORS[name], lw=1.2)
            ax.set_ylabel(LABELS[name], rotation=0, ha="right", va="center", fontsize=9)
            ax.set_ylim(bottom=0, top=max(1.0, max(values, default=0.0)) * 1.15)
            ax.grid(alpha=0.3)
            if window is not None:
                ax.axvspan(window[0], window[1], color="#2ca02c", alpha=0.08, lw=0)
            if alarm is not None:
                ax.axvline(alarm, color="#d62728", ls="--", lw=1.2)
        axes[-1].set_xlim(_time(first), _time(last))
        if alarm is not None:
            axes[0].annotate(
                f"{alarm_label} {alarm:%H:%M:%S}Z",
                xy=(mdates.date2num(alarm), 1.0),  # type: ignore[no-untyped-call]
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="#d62728",
                va="bottom",
            )
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
        axes[-1].set_xlabel("UTC" if step == 1 else f"UTC (rates averaged over {step} s)")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
