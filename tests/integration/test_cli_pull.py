"""``pull`` fetches indexed files (by capture or by window) and merges them into one pcapng like mergecap.

Real faulty traffic (tests/fixtures/traffic.py) seen by two "nodes": the client's tcpdump, rotated into
two files, and the server's dumpcap; a second, later capture holds a time-shifted copy of the client's
file. Everything is uploaded to the local S3 and indexed by the project's indexer, and the CLI finds it
through the index alone.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from eks_capture.captures.context import ClusterContext, NodeEntry, PodEntry
from eks_capture_cli import app
from localcloud.template import Stack
from tests.fixtures.node_uploads import (
    CLUSTER,
    FIRST,
    NODE_A,
    NODE_B,
    SECOND,
    Upload,
    index_uploads,
    make_uploads,
    tool_output,
)
from tests.fixtures.stack import stack_outputs
from tests.fixtures.traffic import Captures

pytestmark = pytest.mark.root  # tcpdump/dumpcap traffic and the tshark tools as oracles


@pytest.fixture
def uploads(faulty_captures: Captures, tmp_path: Path) -> list[Upload]:
    work = tmp_path / "sources"
    work.mkdir()
    return make_uploads(faulty_captures, work)


def _invoke(stack: Stack, *args: str) -> tuple[int, str, str]:
    outputs = stack_outputs(stack)
    names = ["--table", outputs["CaptureTableName"], "--bucket", outputs["CaptureBucketName"]]
    result = CliRunner().invoke(app, [*args, *names], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _pulled(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _expected(uploads: list[Upload], capture_ids: set[str], node: str | None = None) -> dict[str, bytes]:
    return {
        f"{u.capture_id}/{u.node}/{u.name.removesuffix('.zst').removesuffix('.gz')}": u.plain.read_bytes()
        for u in uploads
        if u.capture_id in capture_ids and (node is None or u.node == node)
    }


def test_pull_writes_every_file_of_the_capture_decompressed(
    stack: Stack, uploads: list[Upload], tmp_path: Path
) -> None:
    index_uploads(stack, uploads)
    out = tmp_path / "pulled"

    code, stdout, err = _invoke(stack, "pull", FIRST, "--out", str(out))

    assert code == 0, err
    assert _pulled(out) == _expected(uploads, {FIRST})
    assert f"{len(_expected(uploads, {FIRST}))} downloaded" in stdout


def test_a_second_pull_resumes_fetching_only_what_is_missing(
    stack: Stack, uploads: list[Upload], tmp_path: Path
) -> None:
    index_uploads(stack, uploads)
    bucket = stack_outputs(stack)["CaptureBucketName"]
    out = tmp_path / "pulled"
    missing = f"captures/{CLUSTER}/{FIRST}/{NODE_B}/{uploads[2].name}"
    s3 = boto3.client("s3")
    kept = s3.get_object(Bucket=bucket, Key=missing)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=missing)

    code, _, err = _invoke(stack, "pull", FIRST, "--out", str(out))

    assert code == 3
    assert err == f"error: s3://{bucket}/{missing} is indexed but not in the bucket\n"
    first_run = {p: (out / p).stat().st_mtime_ns for p in _pulled(out)}
    assert len(first_run) == len(_expected(uploads, {FIRST})) - 1
    s3.put_object(Bucket=bucket, Key=missing, Body=kept)

    code, stdout, err = _invoke(stack, "pull", FIRST, "--out", str(out))

    assert code == 0, err
    assert _pulled(out) == _expected(uploads, {FIRST})
    assert "1 downloaded" in stdout
    assert all((out / p).stat().st_mtime_ns == mtime for p, mtime in first_run.items())


def _window(uploads: list[Upload]) -> tuple[str, str]:
    stamps = [
        Decimal(t)
        for u in uploads
        for t in tool_output("tshark", "-r", str(u.plain), "-T", "fields", "-e", "frame.time_epoch").split()
    ]
    low = datetime.fromtimestamp(float(min(stamps)), tz=UTC) - timedelta(seconds=1)
    high = datetime.fromtimestamp(float(max(stamps)), tz=UTC) + timedelta(seconds=1)
    return low.isoformat(), high.isoformat()


@pytest.mark.parametrize("node", [None, NODE_A], ids=["all-nodes", "one-node"])
def test_a_window_pull_spans_nodes_and_captures(
    stack: Stack, uploads: list[Upload], tmp_path: Path, node: str | None
) -> None:
    index_uploads(stack, uploads)
    low, high = _window(uploads)
    out = tmp_path / "pulled"
    node_option = ["--node", node] if node else []

    code, _, err = _invoke(
        stack, "pull", "-c", CLUSTER, "--from", low, "--to", high, "-o", str(out), *node_option
    )

    assert code == 0, err
    assert _pulled(out) == _expected(uploads, {FIRST, SECOND}, node)


def test_a_window_ending_before_it_starts_is_refused(stack: Stack, uploads: list[Upload]) -> None:
    code, out, err = _invoke(
        stack, "pull", "-c", CLUSTER, "--from", "2026-11-25T04:00Z", "--to", "2026-11-25T03:00Z"
    )

    assert code == 2
    assert out == ""
    assert err.startswith("error: bad window")


FIELDS = ["frame.time_epoch", "frame.len", "frame.md5_hash"]


def _packets(
    path: Path, display_filter: str | None = None, extra: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    command = ["tshark", "-r", str(path), "-o", "frame.generate_md5_hash:TRUE", "-T", "fields"]
    for field in (*FIELDS, *extra):
        command += ["-e", field]
    if display_filter:
        command += ["-Y", display_filter]
    lines = tool_output(*command).splitlines()
    return [tuple(line.split("\t")) for line in lines]


def test_merge_matches_mergecap_and_tells_each_packets_node(
    stack: Stack, uploads: list[Upload], tmp_path: Path
) -> None:
    first_tcp = tool_output(
        "tshark", "-r", str(uploads[0].plain), "-Y", "tcp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst"
    )
    client_ip, server_ip = first_tcp.splitlines()[0].split()
    context = ClusterContext(
        cluster=CLUSTER,
        capture_id=FIRST,
        taken_at=datetime(2026, 11, 25, 3, 12, tzinfo=UTC),
        pods=[PodEntry(namespace="shop", name="checkout-7f9c", ips=[client_ip], phase="Running")],
        nodes=[NodeEntry(name="ip-192-168-40-7", ips=[server_ip])],
    )
    index_uploads(stack, uploads, context)
    out, merged = tmp_path / "pulled", tmp_path / "incident.pcapng"

    code, stdout, err = _invoke(stack, "pull", FIRST, "-o", str(out), "--merge", str(merged))

    assert code == 0, err
    read = {u.plain: _packets(u.plain) for u in uploads if u.capture_id == FIRST}  # one tshark run a file
    inputs = sorted(
        (u for u in uploads if u.capture_id == FIRST),
        key=lambda u: (Decimal(read[u.plain][0][0]), u.node, u.name),
    )
    reference = tmp_path / "mergecap.pcapng"
    tool_output("mergecap", "-I", "none", "-w", str(reference), *(str(u.plain) for u in inputs))
    assert _packets(merged) == _packets(reference)
    for node in (NODE_A, NODE_B):
        own = tmp_path / f"{node}.pcapng"
        tool_output(
            "mergecap", "-I", "none", "-w", str(own), *(str(u.plain) for u in inputs if u.node == node)
        )
        assert _packets(merged, f'frame.interface_name == "{node}"') == _packets(own)
    warnings = subprocess.run(["tshark", "-r", str(merged), "-q"], capture_output=True, text=True)
    assert warnings.returncode == 0
    assert [line for line in warnings.stderr.splitlines() if "Running as user" not in line] == []
    hosts = tool_output("tshark", "-r", str(merged), "-q", "-z", "hosts")
    assert f"{client_ip}\tshop/checkout-7f9c" in hosts
    assert f"{server_ip}\tnode ip-192-168-40-7" in hosts
    assert f"merged {sum(len(read[u.plain]) for u in inputs):,} packets" in stdout
