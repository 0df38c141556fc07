"""Path analysis against the kernel's truth: two nodes, real tcpdump on both, faults in between or on one.

The truth is what tshark cannot say and the kernel can: the packet counters of the iptables rules that
dropped packets in the network (the router's FORWARD chain) or on the receiving node after its capture
point (its INPUT chain), and the queue (tbf) that delayed them.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest

from eks_capture.pcap.paths import FlowPath, PathSummary, analyze_paths
from eks_capture.pcap.reader import CaptureReader
from tests.fixtures.paths import (
    LossyNetwork,
    NodeCaptures,
    capture_traffic,
    dropped,
    must,
    random_drop,
    shifted_pcap,
    two_nodes,
)

pytestmark = pytest.mark.root
MS = 1_000_000
SINK = "10.78.2.2:5001"


def path_summary(captures: NodeCaptures, files: dict[str, Path] | None = None) -> PathSummary:
    """The path analysis of both nodes' files, as the CLI runs it on pulled files."""
    chosen = files or captures.files
    with ExitStack() as stack:
        nodes = [(name, CaptureReader(stack.enter_context(chosen[name].open("rb")))) for name in ("a", "b")]
        return analyze_paths(nodes, spans=[captures.spans["a"], captures.spans["b"]])


def flows_from(summary: PathSummary, node: str) -> list[FlowPath]:
    return [flow for flow in summary.flows if flow.from_node == node]


def upload(summary: PathSummary) -> FlowPath:
    return next(flow for flow in summary.flows if flow.destination == SINK)


def test_packets_dropped_in_the_network_are_lost_between_the_nodes_exactly(
    lossy_network: LossyNetwork,
) -> None:
    captures, a_to_b, b_to_a = lossy_network.captures, lossy_network.a_to_b, lossy_network.b_to_a
    summary = path_summary(captures)
    assert a_to_b > 0, "the random drops dropped nothing: the test proves nothing"
    assert b_to_a > 0, "the random drops dropped nothing: the test proves nothing"
    for node, truth in (("a", a_to_b), ("b", b_to_a)):
        flows = flows_from(summary, node)
        lost = sum(f.lost_between for f in flows)
        in_flight = sum(f.in_flight for f in flows)
        assert lost <= truth <= lost + in_flight, (node, [f.model_dump() for f in flows])
        assert all(f.sent == f.reached + f.lost_between + f.in_flight for f in flows)
        assert all(f.unseen_leaving == 0 and f.duplicated == 0 for f in flows)
    assert {f.protocol for f in summary.flows} == {"tcp", "udp"}  # the upload and the DNS questions


def test_the_worst_flow_comes_first_and_its_sentence_names_both_nodes(
    lossy_network: LossyNetwork,
) -> None:
    summary = path_summary(lossy_network.captures)
    worst = summary.flows[0]
    assert worst.lost_between == max(f.lost_between for f in summary.flows)
    first = summary.findings()[0]
    assert f"{worst.lost_between:,} of {worst.sent:,} packets from {worst.source}" in first
    assert f"on node {worst.from_node} to {worst.destination} on node {worst.to_node}" in first
    assert "were lost between the nodes" in first


@pytest.mark.parametrize("shift_ms", [37, -250])
def test_a_clock_offset_is_estimated_within_a_millisecond_and_changes_no_count(
    lossy_network: LossyNetwork, tmp_path: Path, shift_ms: int
) -> None:
    captures = lossy_network.captures
    shifted = tmp_path / "b-shifted.pcap"
    shifted_pcap(captures.files["b"], shifted, shift_ms * MS)
    honest = path_summary(captures)
    skewed = path_summary(
        NodeCaptures(
            files={"a": captures.files["a"], "b": shifted},
            spans={"a": captures.spans["a"], "b": tuple(t + shift_ms * MS for t in captures.spans["b"])},  # type: ignore[dict-item]
        )
    )
    (before,), (after,) = honest.clocks, skewed.clocks
    assert before.offset_ms is not None
    assert after.offset_ms is not None
    assert abs(after.offset_ms - before.offset_ms - shift_ms) < 1.0
    counted = {
        "sent",
        "reached",
        "lost_between",
        "in_flight",
        "reached_again",
        "duplicated",
        "unseen_leaving",
    }
    assert [f.model_dump(include=counted) for f in skewed.flows] == [
        f.model_dump(include=counted) for f in honest.flows
    ]
    for plain, moved in zip(honest.flows, skewed.flows, strict=True):
        assert plain.delay is not None
        assert moved.delay is not None
        assert abs(moved.delay.p50_ms - plain.delay.p50_ms) < 0.01


def test_packets_dropped_on_the_receiving_node_reached_it_and_are_not_lost_between(tmp_path: Path) -> None:
    with two_nodes("pi") as net:
        random_drop(
            net["b"], "INPUT", 0.03, "-p", "tcp", "--dport", "5001", "-m", "length", "--length", "1000:"
        )
        captures = capture_traffic(net, tmp_path)
        dropped_on_b = dropped(net["b"], "INPUT")
        dropped_between = dropped(net["network"], "FORWARD")
    summary = path_summary(captures)
    flow = upload(summary)
    assert dropped_on_b > 0
    assert dropped_between == 0
    assert flow.lost_between == 0
    assert flow.reached == flow.sent
    assert flow.reached_again >= dropped_on_b, flow.model_dump()
    assert "reached node b and had to be sent again" in summary.findings()[0]


def test_a_queue_in_the_network_shows_in_the_one_way_delay_of_its_direction_only(tmp_path: Path) -> None:
    with two_nodes("pq") as net:
        queue = "tbf rate 20mbit burst 8kb latency 30ms"
        must(net["network"], ["tc", "qdisc", "add", "dev", "to-b", "root", *queue.split()])
        captures = capture_traffic(net, tmp_path, megabytes=1)
        statistics = must(net["network"], ["tc", "-s", "qdisc", "show", "dev", "to-b"])
    overflowed = int(re.search(r"dropped (\d+)", statistics).group(1))  # type: ignore[union-attr]
    summary = path_summary(captures)
    flow = upload(summary)
    ack = next(f for f in summary.flows if f.source == SINK)
    assert flow.delay is not None
    assert ack.delay is not None
    assert flow.delay.p90_ms >= 5.0, flow.delay  # 1 MB through a 20 Mbit/s queue of up to 30 ms
    assert ack.delay.p90_ms < 2.0, ack.delay
    assert sum(f.lost_between for f in flows_from(summary, "a")) == overflowed  # the queue's own drops
