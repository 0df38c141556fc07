"""``eks-capture pull``: a capture's files, or a cluster's for a time window, to disk; optionally merged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from eks_capture.store.files import FileRecord
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.downloads import Fetched, fetch_all, s3_client
from eks_capture_cli.failures import EXIT_BAD_INPUT, EXIT_NOT_FOUND, CommandError, one_line_errors
from eks_capture_cli.merge import merge_files
from eks_capture_cli.merging import report_merge
from eks_capture_cli.pcapng import MergeInput
from eks_capture_cli.stacks import BucketOption, StackOption, StackRef, TableOption
from eks_capture_cli.times import parse_window


def context_names(client: Any, bucket: str, records: list[FileRecord]) -> dict[str, list[str]]:
    """IP -> names from the cluster contexts of the captures ``records`` belong to (absent ones skipped)."""
    from eks_capture.captures.context import load_context  # the Kubernetes client: only when merging

    names: dict[str, list[str]] = {}
    for cluster, capture_id in sorted({(r.cluster, r.capture_id) for r in records}):
        try:
            context = load_context(client, bucket, cluster, capture_id)
        except (ClientError, ValueError, OSError) as error:
            typer.echo(f"warning: cluster context of {capture_id} unreadable, no names: {error}", err=True)
            continue
        for address, name in (context.names() if context else {}).items():
            known = names.setdefault(address, [])
            if name not in known:
                known.append(name)
    return names


def merge_order(fetched: list[Fetched]) -> list[MergeInput]:
    """Merge inputs ordered by first packet, then node and key (the tie-break mergecap would get)."""
    ordered = sorted(
        fetched,
        key=lambda f: (f.record.first_ts.timestamp() if f.record.first_ts else 0.0, f.record.node, f.path),
    )
    return [
        MergeInput(
            path=f.path,
            node=f.record.node,
            first_ns=int(f.record.first_ts.timestamp() * 1_000_000) * 1000 if f.record.first_ts else 0,
        )
        for f in ordered
    ]


def select(
    catalog: Catalog,
    capture_id: str | None,
    cluster: str | None,
    start: str | None,
    end: str | None,
    node: str | None,
) -> list[FileRecord]:
    """The files the options name, from the index."""
    if capture_id:
        if start or end:
            raise CommandError("give a capture id or --from/--to, not both", EXIT_BAD_INPUT)
        catalog.session(capture_id)
        records = catalog.files(capture_id)
        return [r for r in records if node is None or r.node == node]
    if not (cluster and start and end):
        raise CommandError("give a capture id, or --cluster with --from and --to", EXIT_BAD_INPUT)
    low, high = parse_window(start, end)
    return catalog.window(cluster, low, high, node)


@one_line_errors
def pull(
    capture_id: Annotated[str | None, typer.Argument(help="Capture id (or --from/--to).")] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-c", envvar="EKS_CAPTURE_CLUSTER", help="Cluster (window).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Window start: ISO time or age (30m).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Window end: ISO time or age (0s = now).")] = None,
    node: Annotated[str | None, typer.Option("--node", "-n", help="Only this node's files.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the files.")] = Path("captures"),
    merge: Annotated[Path | None, typer.Option("--merge", help="Also merge into this pcapng.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel downloads.")] = 8,
    stack: StackOption = None,
    table: TableOption = None,
    bucket: BucketOption = None,
) -> None:
    """Download capture files found through the index, decompressed; complete files are skipped.

    Example: eks-capture pull -c shop-prod --from 2026-11-25T03:10:00Z --to 2026-11-25T03:15:00Z
    --merge incident.pcapng
    """
    ref = StackRef(stack=stack, table=table, bucket=bucket)
    records = select(Catalog(ref.table_name), capture_id, cluster, start, end, node)
    if not records:
        raise CommandError("no capture files indexed for that capture or window", EXIT_NOT_FOUND)
    bucket_name = ref.bucket_name
    client = s3_client(workers)
    console = Console(stderr=True)
    fetched = _download(console, client, bucket_name, records, out, workers)
    new = sum(1 for f in fetched if f.downloaded)
    typer.echo(f"{len(fetched)} files in {out} ({new} downloaded, {len(fetched) - new} already complete)")
    if merge is not None:
        names = context_names(client, bucket_name, records)
        result = merge_files(merge_order(fetched), merge, names)
        report_merge(merge, result, len(fetched))


def _download(
    console: Console, client: Any, bucket: str, records: list[FileRecord], out: Path, workers: int
) -> list[Fetched]:
    with Progress(
        TextColumn("[bold]pull"),
        BarColumn(),
        TextColumn("{task.fields[files]}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        total_files = len(records)
        task = progress.add_task("pull", total=sum(r.size for r in records), files=f"0/{total_files} files")
        finished = [0]

        def advance(size: int) -> None:
            progress.advance(task, size)

        def done(_fetched: Fetched) -> None:
            finished[0] += 1
            progress.update(task, files=f"{finished[0]}/{total_files} files")

        return fetch_all(bucket, records, out, workers=workers, advance=advance, done=done, client=client)
