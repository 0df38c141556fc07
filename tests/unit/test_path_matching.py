"""Path analysis on hand-made sightings: what each node saw of one conversation, and the verdicts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eks_capture.pcap.path_matching import PASS_NS
from eks_capture.pcap.paths import FlowPath, PathSummary, analyze_paths
from eks_capture.pcap.reader import Record
from tests.fixtures.packets import ACK, CLIENT, SERVER, dns, ethernet, ipv4, ipv6, sll, sll2, tcp, udp

T0 = 1_764_000_000_000_000_000
MS = 1_000_000
US = 1_000
DELAY = 200 * US
SEGMENTS = 50
#: (node, time, frame) as a node's capture saw it.
Sighting = tuple[str, int, bytes]


def record(ts: int, frame: bytes) -> Record:
    return (ts, 1, frame, 0, len(frame), len(frame))


def data(i: int, ident: int | None = None) -> bytes:
    """The client's i-th 100-byte segment (IP ID i unless told)."""
    return ethernet(ipv4(tcp(1000 + 100 * i, 1, ACK, b"x" * 100), ident=i if ident is None else ident))


def ack(i: int) -> bytes:
    return ethernet(ipv4(tcp(1, 1100 + 100 * i, ACK, sport=443, dport=40000), SERVER, CLIENT, ident=i))


def conversation(skip: Callable[[str, int, str], bool] = lambda _node, _i, _kind: False) -> list[Sighting]:
    """Client on node a sends SEGMENTS segments to the server on node b, each acknowledged."""
    seen: list[Sighting] = []
    for i in range(SEGMENTS):
        sent = T0 + i * MS
        for node, at, kind, frame in (
            ("a", sent, "data", data(i)),
            ("b", sent + DELAY, "data", data(i)),
            ("b", sent + 300 * US, "ack", ack(i)),
            ("a", sent + 300 * US + DELAY, "ack", ack(i)),
        ):
            if not skip(node, i, kind):
                seen.append((node, at, frame))
    return seen


def paths(seen: list[Sighting], *, b_clock_ns: int = 0, owners: dict[str, str] | None = None) -> PathSummary:
    by_node: dict[str, list[Record]] = {"a": [], "b": []}
    for node, at, frame in sorted(seen, key=lambda s: s[1]):
        by_node[node].append(record(at + (b_clock_ns if node == "b" else 0), frame))
    spans = [(T0 - MS, T0 + 5_000 * MS), (T0 - MS + b_clock_ns, T0 + 5_000 * MS + b_clock_ns)]
    return analyze_paths(
        list(by_node.items()), spans=spans, owners=owners, window_ns=100 * MS, max_offset_ns=100 * MS
    )


def flow(summary: PathSummary, source: str) -> FlowPath:
    return next(f for f in summary.flows if f.source.startswith(source))


COUNTS = ("sent", "reached", "lost_between", "in_flight", "reached_again", "duplicated", "unseen_leaving")


@pytest.mark.parametrize(
    ("case", "skip", "extra", "expected"),
    [
        ("every packet seen on both nodes reached", lambda n, i, k: False, [], (50, 50, 0, 0, 0, 0, 0)),
        (
            "a packet that left a and never reached b is lost between",
            lambda n, i, k: (n, i, k) == ("b", 7, "data"),
            [],
            (50, 49, 1, 0, 0, 0, 0),
        ),
        (
            "a packet b received that a never saw leave is unseen leaving, not lost",
            lambda n, i, k: (n, i, k) == ("a", 7, "data"),
            [],
            (49, 49, 0, 0, 0, 0, 1),
        ),
        (
            "a second copy at the receiver is a duplicate",
            lambda n, i, k: False,
            [("b", T0 + 7 * MS + DELAY + 5 * MS, data(7))],
            (50, 50, 0, 0, 0, 1, 0),
        ),
        (
            "a copy within the pass time on the same node is one crossing (veth, then eth0)",
            lambda n, i, k: False,
            [("a", T0 + 7 * MS + PASS_NS // 2, data(7))],
            (50, 50, 0, 0, 0, 0, 0),
        ),
        (
            "data that reached b and was resent (new IP ID) reached again",
            lambda n, i, k: False,
            [("a", T0 + 60 * MS, data(7, ident=900)), ("b", T0 + 60 * MS + DELAY, data(7, ident=900))],
            (51, 51, 0, 0, 1, 0, 0),
        ),
        (
            "a packet sent after the receiver's capture stopped is in flight, not lost",
            lambda n, i, k: False,
            [("a", T0 + 5_000 * MS - 50 * US, data(99))],
            (51, 50, 0, 1, 0, 0, 0),
        ),
    ],
)
def test_what_became_of_the_clients_segments(
    case: str, skip: Callable[[str, int, str], bool], extra: list[Sighting], expected: tuple[int, ...]
) -> None:
    summary = paths(conversation(skip) + extra)
    client = flow(summary, CLIENT)
    assert (client.from_node, client.to_node) == ("a", "b"), case
    assert tuple(client.model_dump()[name] for name in COUNTS) == expected, case


@pytest.mark.parametrize("b_clock_ms", [0, 3, -40, 90])
def test_a_nodes_clock_offset_is_estimated_and_removed_from_the_delays(b_clock_ms: int) -> None:
    summary = paths(
        conversation(lambda n, i, k: (n, k) == ("b", "data") and i % 10 == 3), b_clock_ns=b_clock_ms * MS
    )
    (clock,) = summary.clocks
    assert clock.offset_ms == pytest.approx(b_clock_ms, abs=0.001)
    client, server = flow(summary, CLIENT), flow(summary, SERVER)
    assert client.lost_between == 5
    assert server.lost_between == 0
    for direction in (client, server):
        assert direction.delay is not None
        assert direction.delay.p50_ms == pytest.approx(DELAY / MS)


def test_repeated_identities_without_an_ip_id_are_matched_in_number() -> None:
    """IPv6 has no IP ID: a retransmission is the same bytes; each crossing counts."""
    segment = ethernet(ipv6(tcp(5000, 1, ACK, b"y" * 100)))
    seen = [("a", T0, segment), ("a", T0 + 300 * MS, segment), ("b", T0 + 300 * MS + DELAY, segment)]
    client = paths(seen, owners={"fd00::1": "a"}).flows[0]
    assert (client.from_node, client.sent, client.reached, client.lost_between) == ("a", 2, 1, 1)


def test_dns_messages_with_ip_id_zero_are_told_apart_by_their_dns_id() -> None:
    seen: list[Sighting] = []
    for ident in range(6):
        query = ethernet(ipv4(udp(dns(ident)), ident=0))
        seen.append(("a", T0 + ident * MS, query))
        if ident != 4:
            seen.append(("b", T0 + ident * MS + DELAY, query))
    (query_flow,) = paths(seen, owners={CLIENT: "a"}).flows
    assert (query_flow.protocol, query_flow.sent, query_flow.lost_between) == ("udp", 6, 1)


@pytest.mark.parametrize(
    ("owners", "sender"),
    [({CLIENT: "a"}, "a"), ({SERVER: "a"}, "b"), ({CLIENT: "b"}, "b")],
)
def test_a_one_way_flow_goes_the_way_the_cluster_context_places_its_addresses(
    owners: dict[str, str], sender: str
) -> None:
    seen = [("a", T0 + i * MS, data(i)) for i in range(5)] + [("b", T0 + i * MS, data(i)) for i in range(5)]
    (only,) = paths(seen, owners=owners).flows
    assert only.from_node == sender


def test_flows_seen_on_one_node_only_are_not_paths() -> None:
    seen = [("a", T0 + i * MS, data(i)) for i in range(5)]
    assert paths(seen).flows == []


@pytest.mark.parametrize(
    ("link_type", "frame"),
    [(1, ethernet), (276, sll2), (113, sll), (101, lambda ip: ip)],
    ids=["ethernet", "linux-sll2 (tcpdump -i any)", "linux-sll", "raw"],
)
def test_every_link_type_a_node_may_capture_with_matches_alike(
    link_type: int, frame: Callable[[bytes], bytes]
) -> None:
    seen: dict[str, list[Record]] = {"a": [], "b": []}
    for i in range(20):
        segment = frame(ipv4(tcp(1000 + 100 * i, 1, ACK, b"x" * 100), ident=i))
        seen["a"].append((T0 + i * MS, link_type, segment, 0, len(segment), len(segment)))
        if i != 5:
            seen["b"].append((T0 + i * MS + DELAY, link_type, segment, 0, len(segment), len(segment)))
    (only,) = analyze_paths(list(seen.items()), owners={CLIENT: "a"}).flows
    assert (only.sent, only.reached, only.lost_between) == (20, 19, 1)


def test_dns_queries_that_reached_the_server_node_and_got_no_answer_are_unanswered_there() -> None:
    seen: list[Sighting] = []
    for ident in range(6):
        sent = T0 + ident * 10 * MS
        query = ethernet(ipv4(udp(dns(ident)), ident=ident))
        seen += [("a", sent, query), ("b", sent + DELAY, query)]
        answer = ethernet(
            ipv4(udp(dns(ident, response=True), sport=53, dport=40000), SERVER, CLIENT, ident=100 + ident)
        )
        if ident != 2:  # never answered
            seen.append(("b", sent + 2 * DELAY, answer))
        if ident not in (2, 4):  # the answer to 4 is lost on its way back
            seen.append(("a", sent + 3 * DELAY, answer))
    summary = paths(seen)
    questions, answers = flow(summary, CLIENT), flow(summary, SERVER)
    assert (questions.sent, questions.reached, questions.unanswered) == (6, 6, 1)
    assert (answers.sent, answers.lost_between, answers.unanswered) == (5, 1, 0)
    assert "1 DNS query reached node b and was never answered" in sentence_of(summary, CLIENT)


def test_a_syn_that_reached_the_server_node_and_was_sent_again_reached_again() -> None:
    syn = [ethernet(ipv4(tcp(5000, 0, 0x02), ident=ident)) for ident in (1, 2)]
    synack = ethernet(ipv4(tcp(9000, 5001, 0x12, sport=443, dport=40000), SERVER, CLIENT, ident=7))
    seen = [
        ("a", T0, syn[0]), ("b", T0 + DELAY, syn[0]),  # dropped on b after its capture point
        ("a", T0 + 1000 * MS, syn[1]), ("b", T0 + 1000 * MS + DELAY, syn[1]),
        ("b", T0 + 1000 * MS + 2 * DELAY, synack), ("a", T0 + 1000 * MS + 3 * DELAY, synack),
    ]  # fmt: skip
    client = flow(paths(seen), CLIENT)
    assert (client.sent, client.lost_between, client.reached_again) == (2, 0, 1)


def sentence_of(summary: PathSummary, source: str) -> str:
    return next(s for s in summary.findings() if f"from {source}" in s)
