"""``eks-capture path``: the path analysis of an indexed capture, named from its cluster context.

The two nodes' real captures of the lossy network (tests/fixtures/paths.py) are uploaded as the agents
would (one compressed), indexed by the project's indexer, and found by the CLI through the index alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import zstandard
from typer.testing import CliRunner

from eks_capture.captures.context import ClusterContext, NodeEntry, PodEntry, store_context
from eks_capture.captures.indexer import index_object
from eks_capture.events.s3 import S3ObjectRef
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, Trigger
from eks_capture_cli import app
from localcloud.template import Stack
from tests.fixtures.paths import LossyNetwork
from tests.fixtures.stack import CLUSTER, stack_outputs

pytestmark = pytest.mark.root  # the captures are real tcpdump captures of namespaced nodes

CAPTURE = "cap-20261205T071500Z-1a2b3c4d"
NODE_A = "ip-10-78-1-2.us-west-2.compute.internal"
NODE_B = "ip-10-78-2-2.us-west-2.compute.internal"
CLIENT_POD, SERVER_POD = "shop/checkout-7f9c", "payments/ledger-0"


@pytest.fixture
def indexed(stack: Stack, lossy_network: LossyNetwork) -> dict[str, str]:
    """The capture's session, both nodes' files and its cluster context, as the stack leaves them."""
    outputs = stack_outputs(stack)
    bucket, store = outputs["CaptureBucketName"], CaptureStore(outputs["CaptureTableName"])
    created = datetime(2026, 12, 5, 7, 15, tzinfo=UTC)
    store.create_session(
        CaptureSession(
            capture_id=CAPTURE,
            cluster=CLUSTER,
            status="completed",
            trigger=Trigger(kind="manual", reason="where is the loss", event_id=CAPTURE),
            created_at=created,
            expires_at=created + timedelta(minutes=5),
            duration_seconds=60,
            s3_prefix=f"captures/{CLUSTER}/{CAPTURE}/",
        )
    )
    s3 = boto3.client("s3")
    store_context(
        s3,
        bucket,
        ClusterContext(
            cluster=CLUSTER,
            capture_id=CAPTURE,
            taken_at=created,
            nodes=[NodeEntry(name=NODE_A, ips=["10.78.1.9"]), NodeEntry(name=NODE_B, ips=["10.78.2.9"])],
            pods=[
                PodEntry(
                    namespace="shop", name="checkout-7f9c", node=NODE_A, ips=["10.78.1.2"], phase="Running"
                ),
                PodEntry(
                    namespace="payments", name="ledger-0", node=NODE_B, ips=["10.78.2.2"], phase="Running"
                ),
            ],
        ),
    )
    files = lossy_network.captures.files
    for node, name, body in (
        (
            NODE_A,
            "20261205T071500Z-00000.pcap.zst",
            zstandard.ZstdCompressor().compress(files["a"].read_bytes()),
        ),
        (NODE_B, "20261205T071500Z-00000.pcap", files["b"].read_bytes()),
    ):
        key = f"captures/{CLUSTER}/{CAPTURE}/{node}/{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        ref = S3ObjectRef(bucket=bucket, key=key, size=None, etag=None, sequencer=None)
        assert index_object(ref, store, s3).status == "indexed"
    return outputs


def invoke(outputs: dict[str, str], *args: str) -> tuple[int, str, str]:
    names = ["--table", outputs["CaptureTableName"], "--bucket", outputs["CaptureBucketName"]]
    result = CliRunner().invoke(app, [*args, *names], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def test_path_json_names_the_pods_and_counts_the_networks_drops_exactly(
    indexed: dict[str, str], lossy_network: LossyNetwork, tmp_path: Path
) -> None:
    code, stdout, stderr = invoke(indexed, "path", CAPTURE, "--json", "--out", str(tmp_path))

    assert code == 0, stderr
    flows = json.loads(stdout)["flows"]
    upload = next(f for f in flows if f["destination"] == "10.78.2.2:5001")
    assert (upload["from_node"], upload["to_node"]) == (NODE_A, NODE_B)
    assert (upload["source_name"], upload["destination_name"]) == (CLIENT_POD, SERVER_POD)
    for node, truth in ((NODE_A, lossy_network.a_to_b), (NODE_B, lossy_network.b_to_a)):
        assert sum(f["lost_between"] for f in flows if f["from_node"] == node) == truth
        assert sum(f["in_flight"] for f in flows if f["from_node"] == node) == 0


def test_path_table_shows_each_direction_through_the_network_and_the_worst_flow_in_words(
    indexed: dict[str, str], tmp_path: Path
) -> None:
    code, stdout, stderr = invoke(indexed, "path", CAPTURE, "--out", str(tmp_path))

    assert code == 0, stderr
    assert f"{NODE_A} → network → {NODE_B}" in stdout
    assert f"{NODE_B} → network → {NODE_A}" in stdout
    assert f"packets from {CLIENT_POD} on node {NODE_A} to {SERVER_POD} on node {NODE_B}" in stdout
    assert f"clock of {NODE_B} relative to {NODE_A}" in stdout


def test_path_of_an_unknown_capture_says_so(indexed: dict[str, str], tmp_path: Path) -> None:
    code, _stdout, stderr = invoke(indexed, "path", "cap-20261205T071500Z-00000000", "--out", str(tmp_path))

    assert code == 3
    assert "capture cap-20261205T071500Z-00000000 not found" in stderr
