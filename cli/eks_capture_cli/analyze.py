"""``eks-capture analyze FILE``: the summary the indexer stores, for a local capture file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from eks_capture.pcap import CaptureSummary, analyze_file

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def load_context(path: Path) -> dict[str, str]:
    """IP -> name from a capture's context.json.gz or a JSON object of IP -> name (either gzipped)."""
    from eks_capture.captures.context import names_from_document  # its models: only when a context is given

    raw = path.read_bytes()
    try:
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--context") from error
    try:
        return names_from_document(data)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--context") from error


def render(summary: CaptureSummary, console: Console) -> None:
    """The summary for people: counts, findings by severity, top talkers."""
    span = "-"
    if summary.first_ts and summary.last_ts:
        span = f"{summary.first_ts:%Y-%m-%d %H:%M:%S} → {summary.last_ts:%H:%M:%S} UTC"
    console.print(
        f"[bold]{summary.packets:,} packets[/], {summary.bytes:,} bytes, {span}, "
        f"{summary.format}/{summary.compression}, link: {', '.join(summary.link_types) or '-'}"
    )
    if summary.partial:
        console.print(f"[yellow]partial:[/] {summary.partial_reason}")
    counts = Table(show_header=True, header_style="bold", box=None)
    counts.add_column("counter")
    counts.add_column("value", justify="right")
    for section, model in (("tcp", summary.tcp), ("dns", summary.dns), ("icmp", summary.icmp)):
        for name, value in model.model_dump().items():
            counts.add_row(f"{section}.{name}", str(value))
    console.print(counts)
    if summary.findings:
        findings = Table(title="Findings", show_header=True, header_style="bold")
        findings.add_column("severity")
        findings.add_column("finding")
        for finding in summary.findings:
            findings.add_row(f"[{SEVERITY_STYLE[finding.severity]}]{finding.severity}[/]", finding.message)
        console.print(findings)
    else:
        console.print("[green]No findings.[/]")
    talkers = Table(title="Top talkers (bytes)", show_header=True, header_style="bold")
    for column in ("address", "name", "bytes", "packets"):
        talkers.add_column(column, justify="right" if column in ("bytes", "packets") else "left")
    for talker in summary.top_talkers:
        talkers.add_row(talker.address, talker.name or "", f"{talker.bytes:,}", f"{talker.packets:,}")
    console.print(talkers)


CaptureFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="pcap or pcapng, plain/.gz/.zst")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (the stored form).")]
ContextFile = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="The capture's context.json.gz (pods, services, nodes), or a JSON object of IP -> name.",
    ),
]


def analyze(file: CaptureFile, as_json: JsonFlag = False, context: ContextFile = None) -> None:
    """Analyse a capture file: TCP/DNS/ICMP trouble counts, top talkers and ranked findings.

    Example: eks-capture analyze 20260101T031200Z-00001.pcap.zst --json
    """
    names = load_context(context) if context else None
    summary = analyze_file(file, context=names)
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        render(summary, Console())
