"""Link layers, IP versions, DNS matching and ICMP errors, on hand-made packets."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eks_capture.pcap import summaries
from tests.fixtures.packets import (
    ACK,
    CLIENT,
    RST,
    SERVER,
    SYN,
    dns,
    ethernet,
    ipv4,
    ipv6,
    sll,
    sll2,
    summarize,
    tcp,
    udp,
)

SECOND = 1_000_000_000


def _refused_and_nxdomain(ip: Callable[..., bytes], client: str, server: str) -> list[bytes]:
    return [
        ip(tcp(1000, 0, SYN), client, server),
        ip(tcp(0, 1001, RST | ACK, sport=443, dport=40000), server, client),
        ip(udp(dns(7)), client, server),
        ip(udp(dns(7, response=True, rcode=3), sport=53, dport=40000), server, client),
    ]


def _vlan(ip: bytes) -> bytes:
    frame = ethernet(ip)
    return frame[:12] + struct.pack(">HH", 0x8100, 42) + frame[12:]


V4 = _refused_and_nxdomain(ipv4, CLIENT, SERVER)
V6 = _refused_and_nxdomain(ipv6, "fd00::1", "fd00::2")


@pytest.mark.parametrize(
    ("frames", "link_type", "name"),
    [
        ([ethernet(ip) for ip in V4], 1, "ethernet"),
        ([_vlan(ip) for ip in V4], 1, "ethernet"),
        ([sll(ip) for ip in V4], 113, "linux-sll"),
        ([sll2(ip) for ip in V4], 276, "linux-sll2"),
        (V4, 101, "raw"),
        (V4, 228, "ipv4"),
        ([ethernet(ip) for ip in V6], 1, "ethernet"),
        ([sll2(ip) for ip in V6], 276, "linux-sll2"),
        (V6, 229, "ipv6"),
    ],
    ids=["ethernet", "vlan", "sll", "sll2", "raw", "ipv4", "ethernet-v6", "sll2-v6", "ipv6"],
)
def test_every_link_layer_and_ip_version_gives_the_same_counts(
    frames: list[bytes], link_type: int, name: str
) -> None:
    summary = summarize(frames, link_type)
    assert summary.link_types == [name]
    assert (summary.tcp.connections, summary.tcp.refused, summary.tcp.resets) == (1, 1, 1)
    assert (summary.dns.queries, summary.dns.nxdomain, summary.dns.unanswered) == (1, 1, 0)


def q(ident: int) -> bytes:
    return ethernet(ipv4(udp(dns(ident))))


def r(ident: int, rcode: int = 0) -> bytes:
    return ethernet(ipv4(udp(dns(ident, response=True, rcode=rcode), sport=53, dport=40000), SERVER, CLIENT))


@pytest.mark.parametrize(
    ("frames", "step_ns", "expected"),
    [
        ([q(1), r(1)], SECOND // 10, (2, 1, 0)),
        ([q(1)], SECOND // 10, (1, 1, 1)),
        ([q(1), q(2), r(2), r(1)], SECOND // 10, (4, 2, 0)),
        ([q(1), q(1), r(1)], SECOND, (3, 2, 1)),  # a retry within 5 s never shows a response
        ([q(1), q(1), r(1)], 6 * SECOND, (3, 2, 1)),  # after 5 s it is a new query; the first stays open
        ([r(1)], SECOND, (1, 0, 0)),
        ([q(1), r(1), r(1)], SECOND // 10, (3, 1, 0)),
        ([q(1), r(1), q(1), r(1)], SECOND // 10, (4, 2, 0)),  # an id reused after its answer
    ],
    ids=[
        "answered",
        "silent",
        "crossed",
        "retry",
        "late-retry",
        "orphan-response",
        "double-response",
        "id-reuse",
    ],
)
def test_dns_queries_count_as_unanswered_exactly_when_wireshark_shows_no_response_in(
    frames: list[bytes], step_ns: int, expected: tuple[int, int, int]
) -> None:
    dns_summary = summarize(frames, step_ns=step_ns).dns
    packets = dns_summary.queries + dns_summary.responses
    assert (packets, dns_summary.queries, dns_summary.unanswered) == expected


@pytest.mark.parametrize(("rcode", "nxdomain", "servfail"), [(0, 0, 0), (2, 0, 1), (3, 1, 0), (5, 0, 0)])
def test_dns_error_responses_are_counted_by_rcode(rcode: int, nxdomain: int, servfail: int) -> None:
    dns_summary = summarize([q(9), r(9, rcode)]).dns
    assert (dns_summary.nxdomain, dns_summary.servfail) == (nxdomain, servfail)


def icmp_unreachable(code: int, quoted: bytes, mtu: int = 0) -> bytes:
    body = struct.pack(">BBHHH", 3, code, 0, 0, mtu) + quoted
    return ethernet(ipv4((body, 1), "10.0.0.254", CLIENT))


@pytest.mark.parametrize(("code", "unreachable", "frag_needed"), [(3, 1, 0), (4, 1, 1), (13, 1, 0)])
def test_icmp_destination_unreachable_counts_and_frag_needed_is_code_four(
    code: int, unreachable: int, frag_needed: int
) -> None:
    summary = summarize([icmp_unreachable(code, ipv4(udp(b"z" * 8, dport=9999)), mtu=1400)])
    assert (summary.icmp.unreachable, summary.icmp.frag_needed) == (unreachable, frag_needed)


def test_frag_needed_finding_names_the_router_and_the_next_hop_mtu() -> None:
    summary = summarize([icmp_unreachable(4, ipv4(udp(b"z" * 8, dport=9999), CLIENT, "10.9.9.9"), mtu=1400)])
    assert [f.message for f in summary.findings if f.kind == "icmp.unreachable.4"] == [
        "ICMP fragmentation needed from 10.0.0.254 for UDP 10.9.9.9:9999 (next-hop MTU 1400), 1 packet: "
        "path MTU problem"
    ]


def test_a_dns_query_quoted_in_an_icmp_error_counts_as_an_unanswered_query_like_wireshark() -> None:
    summary = summarize([icmp_unreachable(3, ipv4(udp(dns(5))))])
    assert (summary.dns.queries, summary.dns.unanswered, summary.icmp.unreachable) == (1, 1, 1)


def test_ip_fragments_are_counted_as_traffic_but_not_analysed() -> None:
    fragment = bytearray(ipv4(tcp(1000, 0, SYN)))
    fragment[6] = 0x20  # more fragments
    summary = summarize([ethernet(bytes(fragment))])
    assert (summary.packets, summary.tcp.connections, summary.top_talkers[0].packets) == (1, 0, 1)


def test_frames_too_short_for_their_headers_are_counted_and_skipped() -> None:
    frames = [ethernet(ipv4(tcp(1, 0, SYN)))[:30], b"\x00" * 10, ethernet(ipv4(udp(dns(1))))[:40]]
    summary = summarize(frames)
    assert (summary.packets, summary.tcp.connections, summary.dns.queries) == (3, 0, 0)


HANDSHAKE_AND_RESENT_DATA = [
    ipv4(tcp(1000, 0, SYN)),
    ipv4(tcp(5000, 1001, SYN | ACK, sport=443, dport=40000), SERVER, CLIENT),
    ipv4(tcp(1001, 5001, ACK)),
    ipv4(tcp(1001, 5001, ACK, b"d" * 100)),
    ipv4(tcp(1001, 5001, ACK, b"d" * 100)),
]


def _ip_option(ip: bytes) -> bytes:
    """The same IPv4 packet with a 4-byte option (four NOPs) in its header."""
    return b"\x46" + ip[1:2] + struct.pack(">H", len(ip) + 4) + ip[4:20] + b"\x01" * 4 + ip[20:]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (lambda ip: ip, (1, 1)),
        (_ip_option, (1, 1)),
        (lambda ip: ip[:2] + b"\x00\x00" + ip[4:], (1, 1)),  # total length 0, as segmentation offload writes
        (lambda ip: ip[:38], (0, 0)),  # TCP header cut short
    ],
    ids=["plain", "ip-option", "no-total-length", "short-tcp-header"],
)
def test_tcp_segments_in_ethernet_frames_count_as_the_same_raw_ip_packets_do(
    shape: Callable[[bytes], bytes], expected: tuple[int, int]
) -> None:
    packets = [shape(ip) for ip in HANDSHAKE_AND_RESENT_DATA]
    framed, raw = summarize([ethernet(ip) for ip in packets]), summarize(packets, 101)
    assert framed.tcp == raw.tcp
    assert (framed.tcp.connections, framed.tcp.retransmissions) == expected
    assert [t.packets for t in framed.top_talkers] == [t.packets for t in raw.top_talkers] == [5, 5]


@settings(max_examples=300, deadline=None)
@given(
    link_type=st.sampled_from([1, 113, 276, 101, 229]),
    frames=st.lists(st.binary(max_size=120), max_size=8),
    seed=st.sampled_from(V4 + V6),
)
def test_arbitrary_frame_bytes_never_break_the_analysis(
    link_type: int, frames: list[bytes], seed: bytes
) -> None:
    mutated = [seed[: len(frame)] + frame for frame in frames]
    summary = summarize(mutated, link_type)
    assert (summary.packets, summary.partial) == (len(mutated), False)


def test_a_decoder_failure_ends_the_analysis_as_partial_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_reader: object, _result: object) -> None:
        raise IndexError("index out of range")

    monkeypatch.setattr(summaries, "scan", broken)
    summary = summarize([ethernet(V4[0])])
    assert summary.partial
    assert summary.partial_reason is not None
    assert summary.partial_reason.startswith("undecodable data")
