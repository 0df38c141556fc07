"""TCP analysis on hand-made conversations: what each textbook fault must count as (Wireshark's rules)."""

from __future__ import annotations

import io
import socket
import struct

import pytest

from eks_capture.pcap import TcpSummary, analyze
from eks_capture.pcap.tcp import TcpAnalyzer
from tests.fixtures.packets import ACK, CLIENT, FIN, PSH, RST, SERVER, SYN, Packet, ethernet, ipv4, pcap, tcp

MS = 1_000_000
T0 = 1_764_000_000_000_000_000
C, S = "c", "s"  # direction: client -> server, server -> client
ISN_C, ISN_S = 1000, 5000
Segment = tuple[float, str, int, int, int, int, int]  # ms, direction, seq, ack, flags, payload bytes, window
HANDSHAKE: list[Segment] = [
    (0, C, ISN_C, 0, SYN, 0, 64240),
    (1, S, ISN_S, ISN_C + 1, SYN | ACK, 0, 65160),
    (2, C, ISN_C + 1, ISN_S + 1, ACK, 0, 502),
]
D = ISN_C + 1  # first data byte of the client
A = ISN_S + 1  # the server's next sequence number (it sends no data here)


def tcp_counts(segments: list[Segment], sport: int = 40000) -> TcpSummary:
    packets = []
    for ms, direction, seq, ack, flags, size, window in segments:
        ports = {"sport": sport, "dport": 443} if direction == C else {"sport": 443, "dport": sport}
        src, dst = (CLIENT, SERVER) if direction == C else (SERVER, CLIENT)
        segment = tcp(seq, ack, flags, b"d" * size, window, **ports)
        packets.append(Packet(T0 + int(ms * MS), ethernet(ipv4(segment, src, dst))))
    return analyze(io.BytesIO(pcap(packets))).tcp


def test_a_segment_sent_again_after_a_timeout_is_one_retransmission() -> None:
    counts = tcp_counts([*HANDSHAKE, (10, C, D, A, ACK | PSH, 100, 502), (300, C, D, A, ACK | PSH, 100, 502)])
    assert (counts.retransmissions, counts.fast_retransmissions, counts.spurious_retransmissions) == (1, 0, 0)


def test_a_segment_resent_right_after_three_duplicate_acks_is_a_fast_retransmission() -> None:
    sent = [(10 + i, C, D + 100 * i, A, ACK, 100, 502) for i in range(4)]
    dupacks = [(15 + i, S, A, D, ACK, 0, 65160) for i in range(3)]
    counts = tcp_counts([*HANDSHAKE, *sent, *dupacks, (19, C, D, A, ACK, 100, 502)])
    assert (counts.retransmissions, counts.fast_retransmissions, counts.duplicate_acks) == (1, 1, 3)


def test_resending_data_the_receiver_already_acknowledged_is_a_spurious_retransmission() -> None:
    counts = tcp_counts(
        [
            *HANDSHAKE,
            (10, C, D, A, ACK, 100, 502),
            (11, S, A, D + 100, ACK, 0, 65160),
            (400, C, D, A, ACK, 100, 502),
        ]
    )
    assert (counts.retransmissions, counts.spurious_retransmissions) == (1, 1)


def test_a_receiver_advertising_a_zero_window_counts_each_such_segment() -> None:
    counts = tcp_counts(
        [
            *HANDSHAKE,
            (10, C, D, A, ACK, 100, 502),
            (11, S, A, D + 100, ACK, 0, 0),
            (12, S, A, D + 100, ACK, 0, 0),
        ]
    )
    assert counts.zero_windows == 2


def test_a_keep_alive_is_not_a_retransmission() -> None:
    counts = tcp_counts([*HANDSHAKE, (10, C, D, A, ACK, 10, 502), (11, S, A, D + 10, ACK, 0, 65160),
                         (5000, C, D + 9, A, ACK, 0, 502)])  # fmt: skip
    assert counts.retransmissions == 0


def test_a_syn_repeated_with_the_same_isn_is_a_retransmitted_unanswered_handshake() -> None:
    counts = tcp_counts([(0, C, ISN_C, 0, SYN, 0, 64240), (1000, C, ISN_C, 0, SYN, 0, 64240)])
    assert (counts.connections, counts.retransmissions, counts.unanswered_syns) == (1, 1, 1)


def test_a_syn_with_a_new_isn_on_the_same_ports_starts_a_new_connection() -> None:
    closed = [*HANDSHAKE, (5, C, D, A, FIN | ACK, 0, 502), (6, S, A, D + 1, FIN | ACK, 0, 509)]
    counts = tcp_counts([*closed, (7, C, D + 1, A + 1, ACK, 0, 502), (50, C, 777_777, 0, SYN, 0, 64240)])
    assert (counts.connections, counts.retransmissions, counts.unanswered_syns) == (2, 0, 1)


def test_a_syn_answered_by_a_reset_is_refused_not_unanswered() -> None:
    counts = tcp_counts([(0, C, ISN_C, 0, SYN, 0, 64240), (1, S, 0, ISN_C + 1, RST | ACK, 0, 0)])
    assert (counts.refused, counts.unanswered_syns, counts.resets) == (1, 0, 1)


@pytest.mark.parametrize("isn", [0xFFFFFF00, 0xFFFFFFFF])
def test_sequence_numbers_wrapping_past_two_to_the_32_are_not_retransmissions(isn: int) -> None:
    segments: list[Segment] = [
        (0, C, isn, 0, SYN, 0, 64240),
        (1, S, ISN_S, (isn + 1) % 2**32, SYN | ACK, 0, 65160),
    ]
    segments += [(2 + i, C, (isn + 1 + 200 * i) % 2**32, A, ACK, 200, 502) for i in range(4)]
    assert tcp_counts(segments).retransmissions == 0


def test_only_segments_that_carry_sequence_space_can_be_retransmissions() -> None:
    counts = tcp_counts([*HANDSHAKE, (10, C, D, A, ACK, 0, 502), (300, C, D, A, ACK, 0, 502)])
    assert counts.retransmissions == 0


def test_conversations_beyond_the_cap_are_forgotten_but_still_counted() -> None:
    analyzer = TcpAnalyzer(max_conversations=10)
    for port in range(100):
        key = socket.inet_aton(CLIENT) + socket.inet_aton(SERVER) + struct.pack(">HH", 20000 + port, 443)
        analyzer.segment(key, T0 + port * MS, 1000, 0, SYN, 64240, 0, 74)
    analyzer.evict_idle(T0 + 100 * MS)
    assert len(analyzer.table) == 2 * 10
    assert (analyzer.close().connections, analyzer.counts.unanswered_syns) == (100, 100)
