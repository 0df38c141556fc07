"""``eks-capture report ID``: the incident report, stored next to the captures, as a presigned link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eks_capture.report.links import DEFAULT_EXPIRY, signing_s3_client
from eks_capture_cli.browse import console_link
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.failures import one_line_errors
from eks_capture_cli.stacks import BucketOption, StackOption, StackRef, TableOption


@one_line_errors
def report(
    capture_id: Annotated[str, typer.Argument(help="Capture id (cap-YYYYmmddTHHMMSSZ-xxxxxxxx).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the page here.")] = None,
    expires: Annotated[
        int, typer.Option(min=60, max=604800, help="Seconds the presigned links stay valid.")
    ] = DEFAULT_EXPIRY,
    stack: StackOption = None,
    table: TableOption = None,
    bucket: BucketOption = None,
) -> None:
    """Write the incident report (timelines, findings, top talkers, files) and print its link.

    Example: eks-capture report cap-20261125T031200Z-0a1b2c3d -o incident.html --stack eks-capture
    """
    from eks_capture.report.building import S3Files, build, publish  # matplotlib: only when reporting

    ref = StackRef(stack=stack, table=table, bucket=bucket)
    catalog = Catalog(ref.table_name)
    session = catalog.session(capture_id)
    storage = S3Files(signing_s3_client(), ref.bucket_name)
    built = build(
        session,
        catalog.files(capture_id),
        storage,
        console=console_link(storage.bucket, session.s3_prefix),
        expires=expires,
    )
    if output is not None:
        output.write_text(built.html, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    key, url = publish(storage, session, built.html, expires)
    typer.echo(f"stored s3://{storage.bucket}/{key}", err=True)
    typer.echo(url)
