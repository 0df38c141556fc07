"""``eks-capture path ID``: where packets were lost between a capture's nodes, flow by flow, worst first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from eks_capture.pcap.paths import FlowPath, PathSummary
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.downloads import fetch_all, s3_client
from eks_capture_cli.failures import EXIT_NOT_FOUND, CommandError, one_line_errors
from eks_capture_cli.stacks import BucketOption, StackOption, StackRef, TableOption

MAX_ROWS = 50
COLUMNS = ("flow", "sent", "lost between", "reached", "reached again", "in flight", "delay p50/p99 ms")


def _delay(flow: FlowPath) -> str:
    if flow.delay is None:
        return "-"
    return f"{flow.delay.p50_ms:.3f} / {flow.delay.p99_ms:.3f}"


def _named(endpoint: str, name: str | None) -> str:
    return f"{name} ({endpoint})" if name else endpoint


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({100 * part / whole:.1f}%)" if part and whole else f"{part:,}"


def render(summary: PathSummary, console: Console, dropped: int = 0) -> None:
    """A table per node pair: sender's node → network → receiver's node, worst flows first."""
    if not summary.flows:
        console.print("No flow was seen on two nodes: nothing to localize.")
        return
    for clock in summary.clocks:
        offset = "not estimated (no conversation seen both ways)"
        if clock.offset_ms is not None:
            offset = f"{clock.offset_ms:+.3f} ms ({clock.packets:,} matched packets)"
        console.print(f"clock of {clock.node_b} relative to {clock.node_a}: {offset}")
    pairs = dict.fromkeys((f.from_node, f.to_node) for f in summary.flows)
    for sender, receiver in pairs:
        table = Table(title=f"{sender} → network → {receiver}", show_header=True, header_style="bold")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column == "flow" else "right")
        flows = [f for f in summary.flows if (f.from_node, f.to_node) == (sender, receiver)]
        for flow in flows[:MAX_ROWS]:
            table.add_row(
                f"{flow.protocol} {_named(flow.source, flow.source_name)} → "
                f"{_named(flow.destination, flow.destination_name)}",
                f"{flow.sent:,}",
                _share(flow.lost_between, flow.sent),
                f"{flow.reached:,}",
                f"{flow.reached_again:,}",
                f"{flow.in_flight:,}",
                _delay(flow),
            )
        console.print(table)
        if len(flows) > MAX_ROWS:
            console.print(f"… and {len(flows) - MAX_ROWS} more flows (--json has them all)")
    for sentence in summary.findings():
        console.print(f"- {sentence}")
    if dropped:
        console.print(
            f"[yellow]warning:[/] the captures themselves dropped {dropped:,} packets; a packet a capture "
            "missed looks lost between the nodes"
        )


def _context(client: Any, bucket: str, cluster: str, capture_id: str) -> Any:
    from eks_capture.captures.context import load_context  # the context models: only for this command

    try:
        return load_context(client, bucket, cluster, capture_id)
    except (ClientError, ValueError, OSError) as error:
        typer.echo(f"warning: cluster context of {capture_id} unreadable, no names: {error}", err=True)
        return None


@one_line_errors
def path(
    capture_id: Annotated[str, typer.Argument(help="Capture id (cap-YYYYmmddTHHMMSSZ-xxxxxxxx).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for pulled files.")] = Path("captures"),
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel downloads.")] = 8,
    stack: StackOption = None,
    table: TableOption = None,
    bucket: BucketOption = None,
) -> None:
    """Where packets were lost: each flow seen on two nodes, from the sender's node through the network.

    Pulls the capture's files (as ``pull`` does, complete files are kept) and matches every packet across
    the nodes: lost between the nodes, reached the receiver, reached it again (dropped on that node),
    one-way delay with the nodes' clock offset removed.

    Example: eks-capture path cap-20261125T031200Z-0a1b2c3d --stack eks-capture
    """
    from eks_capture.report.paths import capture_paths  # the context models: only for this command

    ref = StackRef(stack=stack, table=table, bucket=bucket)
    catalog = Catalog(ref.table_name)
    session = catalog.session(capture_id)
    records = catalog.files(capture_id)
    if not records:
        raise CommandError(f"no capture files indexed for {capture_id}", EXIT_NOT_FOUND)
    client = s3_client(workers)
    fetched = {f.record.s3_key: f.path for f in fetch_all(ref.bucket_name, records, out, client=client)}
    context = _context(client, ref.bucket_name, session.cluster, capture_id)
    summary, partial = capture_paths(records, lambda record: fetched[record.s3_key].open("rb"), context)
    for key, reason in partial.items():
        typer.echo(f"warning: {key} ended early: {reason}", err=True)
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        render(summary, Console(), session.totals.dropped)
