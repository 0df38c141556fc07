"""``eks-capture path``: the path analysis of an indexed capture, named from its cluster context.

The two nodes' real captures of the lossy network (tests/fixtures/paths.py) are uploaded as the agents
would (one compressed), indexed by the project's indexer, and found by the CLI through the index alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eks_capture_cli import app
from localcloud.template import Stack
from tests.fixtures.paths import CLIENT_POD, NODE_A, NODE_B, SERVER_POD, LossyNetwork, index_lossy_capture

pytestmark = pytest.mark.root  # the captures are real tcpdump captures of namespaced nodes

CAPTURE = "cap-20261205T071500Z-1a2b3c4d"


@pytest.fixture
def indexed(stack: Stack, lossy_network: LossyNetwork) -> dict[str, str]:
    return index_lossy_capture(stack, lossy_network, CAPTURE)


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
