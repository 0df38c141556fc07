"""The report as one self-contained HTML page: inline CSS and SVG, no script, no external resource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from eks_capture.pcap.paths import PathSummary
from eks_capture.report.path_pictures import path_section
from eks_capture.store.sessions import CaptureSession

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border-bottom:1px solid #eee;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.critical{color:#b00020;font-weight:bold}.warning{color:#b36b00}.info{color:#0b6e99}
.meta td:first-child{color:#666;width:12em}figure{margin:1em 0}figure svg,div.path svg{width:100%;height:auto}
.muted{color:#777}code{font-size:.9em}
"""


@dataclass(frozen=True)
class FindingRow:
    """One finding of one node."""

    node: str
    severity: str
    kind: str
    message: str
    count: int


@dataclass(frozen=True)
class TalkerRow:
    """One top talker as one node saw it."""

    node: str
    address: str
    name: str
    bytes: int
    packets: int


@dataclass(frozen=True)
class FileRow:
    """One capture file and a link to it."""

    node: str
    key: str
    url: str
    first: datetime | None
    last: datetime | None
    packets: int
    size: int
    partial: bool


@dataclass(frozen=True)
class Page:
    """Everything the page shows, already decided."""

    session: CaptureSession
    alarm: datetime | None
    alarm_label: str
    window: tuple[datetime, datetime]
    plots: Sequence[tuple[str, str]]  # (node, svg)
    findings: Sequence[FindingRow]
    talkers: Sequence[TalkerRow]
    files: Sequence[FileRow]
    generated: datetime
    console: str
    paths: PathSummary | None = None


def _t(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _table(
    name: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], empty: str
) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _node_lines(session: CaptureSession) -> str:
    """Each node with its verdict and why (a node that did not capture says what stopped it)."""
    return "<br>".join(
        f"{escape(name)}: {escape(node.status.replace('_', ' '))}"
        + (f" — {escape(node.reason)}" if node.reason else "")
        for name, node in session.nodes.items()
    )


def render(page: Page) -> str:
    """The HTML of the report."""
    s = page.session
    trigger = (
        f"alarm <b>{escape(s.trigger.alarm_name or '')}</b>: {escape(s.trigger.reason)}"
        if s.trigger.kind == "alarm"
        else f"manual request: {escape(s.trigger.reason)}"
        + (f" (by {escape(s.trigger.requested_by)})" if s.trigger.requested_by else "")
    )
    meta = [
        ("cluster", escape(s.cluster)),
        ("trigger", trigger),
        (escape(page.alarm_label), escape(_t(page.alarm))),
        ("capture window", f"{escape(_t(page.window[0]))} → {escape(_t(page.window[1]))}"),
        ("status", f"{escape(s.status)}" + (f" — {escape(s.verdict)}" if s.verdict else "")),
        ("nodes", _node_lines(s) or "-"),
        ("filter", f"<code>{escape(s.filter or 'everything')}</code>"),
        (
            "totals",
            f"{s.totals.files:,} files, {s.totals.packets:,} packets, {s.totals.bytes:,} bytes, "
            f"{s.totals.dropped:,} dropped",
        ),
        ("files in S3", f'<a href="{escape(page.console)}">{escape(s.s3_prefix)}</a>'),
    ]
    meta_html = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in meta)
    plots = (
        "".join(
            f'<figure data-node="{escape(node)}"><figcaption>{escape(node)}</figcaption>{svg}</figure>'
            for node, svg in page.plots
        )
        or '<p class="muted">No packets were captured.</p>'
    )
    findings = _table(
        "findings",
        ["node", "severity", "finding", "count"],
        [
            [
                escape(f.node),
                f'<span class="{escape(f.severity)}">{escape(f.severity)}</span>',
                f"{escape(f.message)} <span class=muted>({escape(f.kind)})</span>",
                f"{f.count:,}",
            ]
            for f in page.findings
        ],
        {3},
        "No findings.",
    )
    session_findings = "".join(f"<li>{escape(f)}</li>" for f in s.findings)
    talkers = _table(
        "talkers",
        ["node", "address", "name", "bytes", "packets"],
        [
            [escape(t.node), escape(t.address), escape(t.name), f"{t.bytes:,}", f"{t.packets:,}"]
            for t in page.talkers
        ],
        {3, 4},
        "No IP traffic.",
    )
    files = _table(
        "files",
        ["node", "file", "first packet", "last packet", "packets", "size"],
        [
            [
                escape(f.node),
                f'<a href="{escape(f.url)}">{escape(f.key.rsplit("/", 1)[-1])}</a>'
                + (" <span class=warning>(partial)</span>" if f.partial else ""),
                escape(_t(f.first)),
                escape(_t(f.last)),
                f"{f.packets:,}",
                f"{f.size:,}",
            ]
            for f in page.files
        ],
        {4, 5},
        "No files were indexed.",
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Incident report {escape(s.capture_id)}</title><style>{STYLE}</style></head>
<body>
<h1>Capture {escape(s.capture_id)}</h1>
<p class="muted">Generated {escape(_t(page.generated))} by eks-capture.
Timelines: per second; the red dashed line is the {escape(page.alarm_label)},
the green band the capture window.</p>
<table class="meta">{meta_html}</table>
<h2>Timelines per node</h2>
{plots}
<h2>Findings</h2>
{f"<ul>{session_findings}</ul>" if session_findings else ""}
{findings}
<h2>Path</h2>
{path_section(page.paths)}
<h2>Top talkers</h2>
{talkers}
<h2>Files</h2>
<p class="muted">Links are presigned and expire; the files stay under the S3 prefix above.</p>
{files}
</body></html>
"""
