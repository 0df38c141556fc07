"""One direction of a TCP conversation as Wireshark's sequence analysis sees it: its state and flag bits.

The names are packet-tcp.c's (epan/dissectors, Wireshark 4.0): ``tcp_flow_t`` and
``tcp_analyze_seq_flow_info_t`` fields, the ``TCP_A_*`` analysis flags, the serial-number comparison.
"""

from __future__ import annotations

SYN = 0x02
FIN = 0x01
RST = 0x04
ACK = 0x10
SYN_ACK = SYN | ACK
SYN_FIN_RST = SYN | FIN | RST

# Wireshark's TCP_A_* analysis flags (the ones this module can set).
RETRANSMISSION = 0x0001
LOST_PACKET = 0x0002
ACK_LOST_PACKET = 0x0004
KEEP_ALIVE = 0x0008
DUPLICATE_ACK = 0x0010
ZERO_WINDOW = 0x0020
ZERO_WINDOW_PROBE = 0x0040
ZERO_WINDOW_PROBE_ACK = 0x0080
KEEP_ALIVE_ACK = 0x0100
OUT_OF_ORDER = 0x0200
FAST_RETRANSMISSION = 0x0400
WINDOW_UPDATE = 0x0800
SPURIOUS_RETRANSMISSION = 0x4000
ANY_RETRANSMISSION = RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION

M32 = 0xFFFFFFFF
HALF = 0x80000000
OOO_DEFAULT_NS = 3_000_000
FAST_RETRANSMISSION_NS = 20_000_000


class Flow:
    """One direction of a conversation: Wireshark's ``tcp_flow_t`` + ``tcp_analyze_seq_flow_info_t``."""

    __slots__ = (
        "base_seq",
        "base_set",
        "dupacknum",
        "lastack",
        "lastacktime",
        "lastsegmentflags",
        "maxseqtobeacked",
        "nextseq",
        "nextseqtime",
        "window",
    )

    def __init__(self) -> None:
        self.base_seq = 0
        self.base_set = False
        self.nextseq = 0
        self.nextseqtime = 0
        self.maxseqtobeacked = 0
        self.lastack = 0
        self.lastacktime = 0
        self.window = 0
        self.dupacknum = 0
        self.lastsegmentflags = 0


def lt_seq(x: int, y: int) -> bool:
    """Serial-number ``x < y`` (Wireshark's LT_SEQ)."""
    return ((x - y) & M32) >= HALF
