"""``eks-capture list`` and ``eks-capture show``: what was captured, by whom, and what it found."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eks_capture.report.links import s3_console_link
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession, SessionStatus
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.failures import one_line_errors
from eks_capture_cli.stacks import BucketOption, StackOption, StackRef, TableOption, region
from eks_capture_cli.times import parse_time, short

STATUS_STYLE = {
    "starting": "cyan",
    "running": "bold cyan",
    "stopping": "yellow",
    "completed": "green",
    "failed": "bold red",
    "rejected": "red",
}
ClusterOption = Annotated[
    str, typer.Option("--cluster", "-c", envvar="EKS_CAPTURE_CLUSTER", help="EKS cluster name.")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def trigger_text(session: CaptureSession) -> str:
    """The alarm name, or the manual request's reason."""
    if session.trigger.kind == "alarm":
        return f"alarm {session.trigger.alarm_name or session.trigger.reason}"
    return f"manual: {session.trigger.reason}"


def console_link(bucket: str, prefix: str) -> str:
    """The S3 console page of a capture's prefix."""
    return s3_console_link(bucket, prefix, region())


def session_row(session: CaptureSession) -> dict[str, Any]:
    """One capture as ``list --json`` prints it."""
    return {
        "capture_id": session.capture_id,
        "cluster": session.cluster,
        "trigger": trigger_text(session),
        "started": session.created_at.isoformat(),
        "status": session.status,
        "nodes": len(session.nodes),
        "files": session.totals.files,
        "packets": session.totals.packets,
        "top_finding": session.findings[0] if session.findings else None,
        "verdict": session.verdict,
    }


def headline(session: CaptureSession) -> str:
    """What ``list`` says of a capture: its top finding, or why it failed or was refused."""
    if session.findings:
        return session.findings[0]
    return session.verdict if session.status in ("failed", "rejected") else ""


@one_line_errors
def list_captures(
    cluster: ClusterOption,
    since: Annotated[str | None, typer.Option(help="Started after: ISO time or age (2h).")] = None,
    status: Annotated[list[str] | None, typer.Option(help="In this status (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many captures.")] = 50,
    as_json: JsonFlag = False,
    stack: StackOption = None,
    table: TableOption = None,
) -> None:
    """List captures of a cluster, newest first.

    Example: eks-capture list --cluster shop-prod --since 24h --status completed --stack eks-capture
    """
    statuses = _statuses(status or [])
    catalog = Catalog(StackRef(stack=stack, table=table).table_name)
    start = parse_time(since, "--since") if since else None
    sessions = catalog.sessions(cluster, since=start, statuses=statuses, limit=limit)
    if as_json:
        typer.echo(json.dumps([session_row(s) for s in sessions], indent=2))
        return
    view = Table(title=f"Captures of {cluster}", header_style="bold")
    for column in (
        "capture",
        "trigger",
        "started",
        "status",
        "nodes",
        "files",
        "packets",
        "top finding or why not",
    ):
        view.add_column(
            column,
            justify="right" if column in ("nodes", "files", "packets") else "left",
            no_wrap=column in ("capture", "started"),
        )
    for session in sessions:
        style = STATUS_STYLE.get(session.status, "")
        view.add_row(
            session.capture_id,
            trigger_text(session),
            short(session.created_at),
            f"[{style}]{session.status}[/]",
            str(len(session.nodes)),
            str(session.totals.files),
            f"{session.totals.packets:,}",
            headline(session),
        )
    console = Console()
    console.print(view if sessions else f"No captures of {cluster} match.")


def _statuses(given: list[str]) -> tuple[SessionStatus, ...]:
    known = tuple(STATUS_STYLE)
    for value in given:
        if value not in known:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(known)}", param_hint="--status")
    return tuple(given)  # type: ignore[arg-type]


def show_data(session: CaptureSession, files: list[FileRecord], bucket: str | None) -> dict[str, Any]:
    """One capture as ``show --json`` prints it."""
    return {
        "session": session.model_dump(mode="json"),
        "files": [f.model_dump(mode="json", exclude={"summary"}) for f in files],
        "s3_prefix": session.s3_prefix,
        "console": console_link(bucket, session.s3_prefix) if bucket else None,
    }


@one_line_errors
def show(
    capture_id: Annotated[str, typer.Argument(help="Capture id (cap-YYYYmmddTHHMMSSZ-xxxxxxxx).")],
    as_json: JsonFlag = False,
    stack: StackOption = None,
    table: TableOption = None,
    bucket: BucketOption = None,
) -> None:
    """Show one capture: per-node status and verdict, files, totals, findings and where the files are.

    Example: eks-capture show cap-20261125T031200Z-0a1b2c3d --stack eks-capture
    """
    ref = StackRef(stack=stack, table=table, bucket=bucket)
    catalog = Catalog(ref.table_name)
    session = catalog.session(capture_id)
    files = catalog.files(capture_id)
    bucket_name = ref.bucket_name if (bucket or stack) else None
    if as_json:
        typer.echo(json.dumps(show_data(session, files, bucket_name), indent=2))
        return
    console = Console()
    style = STATUS_STYLE.get(session.status, "")
    heading = f"[bold]{session.capture_id}[/] on [bold]{session.cluster}[/]"
    console.print(f"{heading}: [{style}]{session.status}[/]")
    console.print(f"trigger: {trigger_text(session)}")
    ended = f", ended {short(session.ended_at)}" if session.ended_at else ""
    console.print(f"started {short(session.created_at)}, {session.duration_seconds}s requested{ended}")
    if session.verdict:
        console.print(f"verdict: {session.verdict}")
    for option, why in sorted(session.limited.items()):
        console.print(f"alarm cap on {option}: {why}", markup=False)
    totals = session.totals
    console.print(
        f"totals: {totals.files} files, {totals.packets:,} packets, {totals.bytes:,} bytes, "
        f"{totals.dropped:,} dropped"
    )
    nodes = Table(title="Nodes", header_style="bold")
    for column in ("node", "status", "matched by", "verdict"):
        nodes.add_column(column)
    for node in session.nodes.values():
        nodes.add_row(node.node, node.status, node.matched_by, node.reason)
    for node_name, why in session.skipped.items():
        nodes.add_row(node_name, "skipped", "", why)
    console.print(nodes)
    _print_files(console, files)
    if session.findings:
        findings = Table(title="Findings", header_style="bold")
        findings.add_column("finding")
        for finding in session.findings:
            findings.add_row(finding)
        console.print(findings)
    console.print(f"S3 prefix: {session.s3_prefix or '-'}")
    if bucket_name:
        console.print(f"console: {console_link(bucket_name, session.s3_prefix)}", soft_wrap=True)


def _print_files(console: Console, files: list[FileRecord]) -> None:
    view = Table(title="Files", header_style="bold")
    for column in ("node", "file", "first packet", "last packet", "packets", "size"):
        view.add_column(column, justify="right" if column in ("packets", "size") else "left")
    for record in files:
        name = record.s3_key.rsplit("/", 1)[-1] + (" (partial)" if record.partial else "")
        view.add_row(
            record.node,
            name,
            short(record.first_ts),
            short(record.last_ts),
            f"{record.packets:,}",
            f"{record.size:,}",
        )
    console.print(view if files else "No files indexed yet.")
