"""The report's "Path" section: per node pair, a picture read at a glance, then the worst flows.

Hand-written SVG (boxes, arrows and numbers) rather than a plot: it is a diagram of where packets went,
sender's node → network → receiver's node, one row per direction, red where packets were lost.
"""

from __future__ import annotations

from html import escape

from eks_capture.pcap.paths import LinkPath, PathSummary

WIDTH = 1000
ROW = 90
BOX = 230
LOST = "#b00020"
FINE = "#2e7d32"
MAX_FLOWS = 20
HEADERS = ("flow", "sent", "lost between", "reached", "reached again", "delay p50 ms")


def _count(part: int, whole: int) -> str:
    return f"{part:,} ({100 * part / whole:.2f}%)" if part and whole else f"{part:,}"


def _short(node: str, limit: int = 30) -> str:
    """A node's host name without its domain (EKS names end in the region's compute domain)."""
    host = node.split(".", 1)[0]
    return host if len(host) <= limit else host[: limit - 1] + "…"


def _box(x: int, y: int, title: str, lines: list[tuple[str, str]]) -> str:
    text = "".join(
        f'<text x="{x + BOX // 2}" y="{y + 40 + 16 * i}" text-anchor="middle" font-size="12" fill="{color}">'
        f"{escape(line)}</text>"
        for i, (line, color) in enumerate(lines)
    )
    return (
        f"<g><title>{escape(title)}</title>"
        f'<rect x="{x}" y="{y}" width="{BOX}" height="{ROW - 14}" rx="8" fill="#f6f6f6" stroke="#999"/>'
        f'<text x="{x + BOX // 2}" y="{y + 20}" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(_short(title))}</text>{text}</g>"
    )


def _arrow(x1: int, x2: int, y: int, label: str) -> str:
    return (
        f'<line x1="{x1}" y1="{y}" x2="{x2 - 8}" y2="{y}" stroke="#555" stroke-width="2"/>'
        f'<polygon points="{x2},{y} {x2 - 10},{y - 5} {x2 - 10},{y + 5}" fill="#555"/>'
        f'<text x="{(x1 + x2) // 2}" y="{y - 8}" text-anchor="middle" font-size="12">{escape(label)}</text>'
    )


def _row(link: LinkPath, top: int) -> str:
    lost_color = LOST if link.lost_between else FINE
    delay = "delay -"
    if link.delay is not None:
        delay = f"delay p50 {link.delay.p50_ms:.3f} ms · p99 {link.delay.p99_ms:.3f} ms"
    network = [(f"lost between: {_count(link.lost_between, link.sent)}", lost_color), (delay, "#444")]
    receiver = [(f"reached again: {link.reached_again:,}", LOST if link.reached_again else "#444")]
    if link.in_flight:
        network.append((f"in flight at a capture's edge: {link.in_flight:,}", "#777"))
    sender = [(f"{link.flows:,} flow{'s' if link.flows != 1 else ''}", "#444")]
    middle = (WIDTH - BOX) // 2
    return (
        _box(0, top, link.from_node, sender)
        + _arrow(BOX, middle, top + 30, f"sent {link.sent:,}")
        + _box(middle, top, "network", network)
        + _arrow(middle + BOX, WIDTH - BOX, top + 30, f"reached {link.reached:,}")
        + _box(WIDTH - BOX, top, link.to_node, receiver)
    )


def _offset(offset_ms: float | None) -> str:
    return "not estimated (no conversation seen both ways)" if offset_ms is None else f"{offset_ms:+.3f} ms"


def pair_svg(links: list[LinkPath]) -> str:
    """One picture of a node pair: a row per direction, sender's node → network → receiver's node."""
    height = ROW * len(links)
    rows = "".join(_row(link, i * ROW) for i, link in enumerate(links))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="-2 -2 {WIDTH + 4} {height + 4}" width="{WIDTH}" '
        f'height="{height}" font-family="system-ui, sans-serif" role="img">{rows}</svg>'
    )


def path_section(summary: PathSummary | None) -> str:
    """The section's HTML: clocks, a picture per node pair, the worst flows."""
    if summary is None or not summary.flows:
        return '<p class="muted">No flow was seen on two nodes of this capture: nothing to localize.</p>'
    pairs: dict[frozenset[str], list[LinkPath]] = {}
    for link in summary.links:
        pairs.setdefault(frozenset((link.from_node, link.to_node)), []).append(link)
    figures = "".join(
        f'<div class="path" data-pair="{escape(" ".join(sorted(pair)))}">{pair_svg(links)}</div>'
        for pair, links in pairs.items()
    )
    clocks = "".join(
        f"<li>clock of {escape(c.node_b)} relative to {escape(c.node_a)}: {_offset(c.offset_ms)}</li>"
        for c in summary.clocks
    )
    rows = "".join(
        "<tr>"
        f"<td>{escape(f.protocol)} {escape(f.source_name or f.source)} → "
        f"{escape(f.destination_name or f.destination)}"
        f"<br><span class=muted>{escape(f.from_node)} → {escape(f.to_node)}</span></td>"
        f'<td class="n">{f.sent:,}</td>'
        f'<td class="n{" critical" if f.lost_between else ""}">{_count(f.lost_between, f.sent)}</td>'
        f'<td class="n">{f.reached:,}</td><td class="n">{f.reached_again:,}</td>'
        f'<td class="n">{f.delay.p50_ms if f.delay else "-"}</td></tr>'
        for f in summary.flows[:MAX_FLOWS]
    )
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    return (
        '<p class="muted">Each packet is matched across the nodes\' captures: lost between = left the '
        "sender's node and never reached the receiver's; reached again = TCP data that reached the "
        "receiver's node and had to be sent again (dropped on that node after the capture point, or its "
        "acknowledgement was lost). Delays have the nodes' clock offset removed.</p>"
        f"<ul>{clocks}</ul>{figures}"
        f'<table id="paths"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    )
