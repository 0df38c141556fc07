"""One direction of a TCP conversation as Wireshark's sequence analysis sees it: its state, flags and rules.

The names are packet-tcp.c's (epan/dissectors, Wireshark 4.0): ``tcp_flow_t`` and
``tcp_analyze_seq_flow_info_t`` fields, the ``TCP_A_*`` analysis flags, the serial-number comparison, and
``tcp_analyze_sequence_number`` itself (``analyze_segment``).
"""

from __future__ import annotations

SYN = 0x02
FIN = 0x01
RST = 0x04
ACK = 0x10
SYN_ACK = SYN | ACK
SYN_FIN_RST = SYN | FIN | RST
SYN_RST = SYN | RST

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
        "octets",
        "packets",
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
        #: frames and their bytes on the wire (for the traffic between the flow's addresses)
        self.packets = 0
        self.octets = 0


def lt_seq(x: int, y: int) -> bool:
    """Serial-number ``x < y`` (Wireshark's LT_SEQ)."""
    return ((x - y) & M32) >= HALF


def acked_unseen(rev: Flow) -> int:
    """An ACK beyond all ``rev`` has sent: ACKed unseen segment, unless ``rev`` is already known lossy."""
    if lt_seq(rev.maxseqtobeacked, rev.nextseq):
        rev.maxseqtobeacked = rev.nextseq
        return ACK_LOST_PACKET
    flagged = ACK_LOST_PACKET if rev.dupacknum == 0 else 0
    rev.dupacknum = -1
    return flagged


def analyze_segment(
    fwd: Flow, rev: Flow, first_rtt: int, ts: int, seq: int, ack: int, flags: int, window: int, seglen: int
) -> int:
    """The analysis flags of a segment of ``fwd`` whose header length is known; moves ``fwd`` on.

    ``tcp_analyze_sequence_number`` statement for statement (``TcpAnalyzer.segment`` has a shortcut for
    in-order segments and calls this for the others).
    """
    ta = 0
    nextseq = fwd.nextseq
    lastack = fwd.lastack
    plain = not flags & SYN_FIN_RST
    if seglen == 1 and seq == nextseq and rev.window == 0:
        ta = ZERO_WINDOW_PROBE
    else:
        if window == 0 and plain:
            ta |= ZERO_WINDOW
        if nextseq and ((nextseq - seq) & M32) >= HALF and not flags & RST:
            ta |= LOST_PACKET
        if seglen <= 1 and seq == ((nextseq - 1) & M32) and plain:
            ta |= KEEP_ALIVE
        if seglen == 0 and seq == nextseq and ack == lastack and plain:
            if window and window != fwd.window:
                ta |= WINDOW_UPDATE
            if window and window == fwd.window and rev.lastsegmentflags & KEEP_ALIVE:
                ta |= KEEP_ALIVE_ACK
            elif window == 0 and fwd.window == 0 and rev.lastsegmentflags & ZERO_WINDOW_PROBE:
                ta |= ZERO_WINDOW_PROBE_ACK
            elif window and window == fwd.window:
                fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                ta |= DUPLICATE_ACK
    if ack != lastack:
        fwd.dupacknum = 0
    if rev.maxseqtobeacked and ((rev.maxseqtobeacked - ack) & M32) >= HALF and flags & ACK:
        ta |= acked_unseen(rev)
    end = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & M32
    if (seglen > 0 or flags & (SYN | FIN)) and not ta & KEEP_ALIVE:
        # The retransmission / fast / spurious / out-of-order decision.
        not_advanced = nextseq != 0 and ((seq - nextseq) & M32) >= HALF
        if seglen > 1 and ((nextseq - 1) & M32) == seq:
            not_advanced = False
        rev_lastack = rev.lastack
        if seglen > 0 and rev_lastack and ((rev_lastack - (seq + seglen)) & M32) < HALF:
            ta |= SPURIOUS_RETRANSMISSION
        elif not_advanced:
            since_ack = ts - rev.lastacktime
            since_next = ts - fwd.nextseqtime
            if rev.dupacknum >= 2 and rev_lastack == seq and 0 <= since_ack < FAST_RETRANSMISSION_NS:
                ta |= FAST_RETRANSMISSION
            elif 0 <= since_next < (first_rtt or OOO_DEFAULT_NS) and nextseq != end:
                ta |= OUT_OF_ORDER
            else:
                ta |= RETRANSMISSION
    probe = ta & ZERO_WINDOW_PROBE
    if (not fwd.nextseq or ((fwd.nextseq - end) & M32) >= HALF) and not probe:
        fwd.nextseq = end
        fwd.nextseqtime = ts
    if (seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked) and not probe:
        fwd.maxseqtobeacked = fwd.nextseq
    fwd.window = window
    fwd.lastack = ack
    fwd.lastacktime = ts
    fwd.lastsegmentflags = ta
    return ta
