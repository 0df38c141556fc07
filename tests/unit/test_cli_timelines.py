"""Per-second trouble counts: each event lands in the second it belongs to, and they add up to the totals."""

from __future__ import annotations

import pytest

from eks_capture.pcap.tcp_sequence import ACK, RST, SYN
from eks_capture.report.timelines import NS, TimedDns, TimedTcp

CONV = (b"cli", b"srv")
QUERY, NOERROR, SERVFAIL, NXDOMAIN = 0x0100, 0x8180, 0x8182, 0x8183


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param([(1, 7, QUERY), (2, 7, NOERROR)], {}, id="answered-query-is-no-failure"),
        pytest.param([(1, 7, QUERY)], {1: 1}, id="unanswered-query-at-its-second"),
        pytest.param([(1, 7, QUERY), (3, 7, SERVFAIL)], {3: 1}, id="servfail-at-the-response"),
        pytest.param([(1, 7, QUERY), (2, 7, NXDOMAIN)], {2: 1}, id="nxdomain-at-the-response"),
        pytest.param([(1, 7, QUERY), (2, 7, QUERY), (4, 7, NOERROR)], {2: 1}, id="retransmitted-query"),
        pytest.param([(1, 7, QUERY), (1, 8, QUERY), (5, 8, NOERROR)], {1: 1}, id="one-of-two-answered"),
    ],
)
def test_dns_failures_fall_in_their_second_and_sum_to_the_analyzers_count(
    messages: list[tuple[int, int, int]], expected: dict[int, int]
) -> None:
    dns = TimedDns()
    for second, ident, flags in messages:
        src, dst = (b"srv", b"cli") if flags & 0x8000 else (b"cli", b"srv")
        dns.message((*CONV, ident), src, dst, second * NS, flags)

    counts = dns.close()
    assert dict(+dns.failures) == expected
    assert sum((+dns.failures).values()) == counts.servfail + counts.nxdomain + counts.unanswered


def test_an_unanswered_handshake_counts_at_its_last_syn_and_a_reset_at_its_segment() -> None:
    tcp = TimedTcp()
    client_to_server = b"\x0a\x00\x00\x01\x0a\x00\x00\x02\x9c\x40\x01\xbb"
    other = b"\x0a\x00\x00\x01\x0a\x00\x00\x03\x9c\x41\x01\xbb"
    tcp.segment(client_to_server, 1 * NS, 100, 0, SYN, 64240, 0, 74)
    tcp.segment(client_to_server, 3 * NS, 100, 0, SYN, 64240, 0, 74)
    tcp.segment(other, 4 * NS, 500, 0, SYN, 64240, 0, 74)
    tcp.segment(other[4:8] + other[:4] + other[10:12] + other[8:10], 5 * NS, 0, 501, RST | ACK, 0, 0, 54)

    counts = tcp.close()

    assert dict(tcp.unanswered_syns) == {3: 1}
    assert dict(tcp.resets) == {5: 1}
    assert (counts.unanswered_syns, counts.resets) == (1, 1)
