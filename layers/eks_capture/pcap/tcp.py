"""TCP sequence analysis that flags exactly the segments Wireshark 4.0's ``tcp.analysis.*`` flags.

A transcription of ``tcp_analyze_sequence_number`` and the conversation handling of ``dissect_tcp``
(epan/dissectors/packet-tcp.c, default preferences: relative sequence numbers, fast-retransmission
precedence, first-RTT out-of-order threshold). Only the parts that decide the counted flags are kept.
Differences, by design: the unacked-segment list (it only feeds bytes-in-flight and RTO display) is not
kept, so its 10000-segment cap is not modelled; conversations idle for ``idle_ns`` are forgotten so
memory stays bounded (Wireshark keeps them for the whole file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eks_capture.pcap.tcp_sequence import (
    ACK,
    ACK_LOST_PACKET,
    ANY_RETRANSMISSION,
    DUPLICATE_ACK,
    FAST_RETRANSMISSION,
    FAST_RETRANSMISSION_NS,
    FIN,
    HALF,
    KEEP_ALIVE,
    KEEP_ALIVE_ACK,
    LOST_PACKET,
    M32,
    OOO_DEFAULT_NS,
    OUT_OF_ORDER,
    RETRANSMISSION,
    RST,
    SPURIOUS_RETRANSMISSION,
    SYN,
    SYN_ACK,
    SYN_FIN_RST,
    WINDOW_UPDATE,
    ZERO_WINDOW,
    ZERO_WINDOW_PROBE,
    ZERO_WINDOW_PROBE_ACK,
    Flow,
    lt_seq,
)

# Wireshark's tcp.completeness bits that the summary uses.
COMPLETE_SYN = 1
COMPLETE_SYNACK = 2
COMPLETE_RST = 32


class Conversation:
    """One TCP stream (Wireshark's ``tcp.stream``) and what the summary needs to know about it."""

    __slots__ = (
        "client_key",
        "completeness",
        "first_rtt",
        "last_ts",
        "mru_syn",
        "packets",
        "resets",
        "retransmissions",
        "syn_packets",
        "zero_windows",
    )

    def __init__(self, client_key: bytes, ts: int) -> None:
        self.client_key = client_key
        self.mru_syn = 0
        self.first_rtt = 0
        self.last_ts = ts
        self.completeness = 0
        self.packets = 0
        self.syn_packets = 0
        self.retransmissions = 0
        self.resets = 0
        self.zero_windows = 0


@dataclass
class TcpCounts:
    """Frame counts, each equal to the number of frames a tshark display filter matches."""

    connections: int = 0
    unanswered_syns: int = 0
    refused: int = 0
    retransmissions: int = 0
    fast_retransmissions: int = 0
    spurious_retransmissions: int = 0
    out_of_order: int = 0
    duplicate_acks: int = 0
    resets: int = 0
    zero_windows: int = 0
    by_server: dict[bytes, ServerStats] = field(default_factory=dict)


@dataclass
class ServerStats:
    """What happened to the connections towards one server endpoint (address + port)."""

    connections: int = 0
    packets: int = 0
    retransmissions: int = 0
    resets: int = 0
    zero_windows: int = 0
    unanswered: int = 0
    unanswered_syn_packets: int = 0
    refused: int = 0


def server_of(conv: Conversation) -> bytes:
    """Address + port of the server: the SYN's destination, else the side with the lower port."""
    key = conv.client_key
    half = (len(key) - 4) // 2
    if conv.completeness & COMPLETE_SYN or key[-2:] <= key[-4:-2]:
        return key[half : 2 * half] + key[-2:]
    return key[:half] + key[-4:-2]


def reverse_key(key: bytes) -> bytes:
    """(src, dst, sport, dport) -> (dst, src, dport, sport) for IPv4 (12 bytes) or IPv6 (36 bytes) keys."""
    half = (len(key) - 4) // 2
    return key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]


class TcpAnalyzer:
    """Feeds segments through Wireshark's per-conversation state machine and counts the flags."""

    def __init__(self, idle_ns: int = 900 * 1_000_000_000, max_conversations: int = 250_000) -> None:
        self.idle_ns = idle_ns
        self.max_conversations = max_conversations
        self.counts = TcpCounts()
        # key (src, dst, sport, dport as raw bytes) of either direction -> (conversation, fwd, rev)
        self.table: dict[bytes, tuple[Conversation, Flow, Flow]] = {}

    def _new(self, key: bytes, ts: int) -> tuple[Conversation, Flow, Flow]:
        conv = Conversation(key, ts)
        a, b = Flow(), Flow()
        self.table[key] = (conv, a, b)
        self.table[reverse_key(key)] = (conv, b, a)
        self.counts.connections += 1
        return conv, a, b

    def segment(self, key: bytes, ts: int, seq: int, ack: int, flags: int, window: int, seglen: int) -> int:
        """Analyse one segment (``seglen`` < 0: length unknown, header only); return its analysis flags.

        ``tcp_analyze_sequence_number`` of packet-tcp.c statement for statement, inlined here (this runs
        once per TCP packet; calls cost more than the statements).
        """
        entry = self.table.get(key)
        if entry is None:
            conv, fwd, rev = self._new(key, ts)
            if flags & SYN_ACK == SYN:
                conv.completeness |= COMPLETE_SYN
        else:
            conv, fwd, rev = entry
            if flags & (SYN | RST):
                conv, fwd, rev = self._syn_or_reset(key, ts, seq, flags, conv, fwd, rev)
        conv.last_ts = ts
        conv.packets += 1
        ta = 0
        if seglen >= 0:
            if not fwd.base_set:
                fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
                fwd.base_set = True
            if not rev.base_set and flags & ACK:
                rev.base_seq = (ack - 1) & M32
                rev.base_set = True
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
                if lt_seq(rev.maxseqtobeacked, rev.nextseq):
                    rev.maxseqtobeacked = rev.nextseq
                    ta |= ACK_LOST_PACKET
                else:
                    if rev.dupacknum == 0:
                        ta |= ACK_LOST_PACKET
                    rev.dupacknum = -1
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
                    elif 0 <= since_next < (conv.first_rtt or OOO_DEFAULT_NS) and nextseq != end:
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
        if flags & SYN:
            if not flags & ACK:
                conv.mru_syn = ts
                conv.syn_packets += 1
        elif not conv.first_rtt and conv.mru_syn and flags & ACK:
            conv.first_rtt = ts - conv.mru_syn
        if flags & RST:
            self.counts.resets += 1
            conv.resets += 1
        if ta:
            self._count(conv, ta)
        return ta

    def _syn_or_reset(
        self, key: bytes, ts: int, seq: int, flags: int, conv: Conversation, fwd: Flow, rev: Flow
    ) -> tuple[Conversation, Flow, Flow]:
        """A SYN or RST on a known conversation: a new SYN starts a new one, and completeness grows."""
        if flags & SYN_ACK == SYN and fwd.base_set:
            if seq != fwd.base_seq:
                self.finish(conv)
                conv, fwd, rev = self._new(key, ts)
                conv.completeness = COMPLETE_SYN
            else:
                fwd.nextseq = fwd.maxseqtobeacked
        elif flags & SYN_ACK == SYN_ACK and fwd.base_set and seq != fwd.base_seq:
            fwd.base_seq = seq
        if flags & SYN_ACK == SYN_ACK:
            conv.completeness |= COMPLETE_SYNACK
        if flags & RST:
            conv.completeness |= COMPLETE_RST
        return conv, fwd, rev

    def _count(self, conv: Conversation, ta: int) -> None:
        """Count a segment's analysis flags into the totals and its conversation."""
        counts = self.counts
        if ta & ANY_RETRANSMISSION:
            counts.retransmissions += 1
            conv.retransmissions += 1
            if ta & FAST_RETRANSMISSION:
                counts.fast_retransmissions += 1
            if ta & SPURIOUS_RETRANSMISSION:
                counts.spurious_retransmissions += 1
        if ta & ZERO_WINDOW:
            counts.zero_windows += 1
            conv.zero_windows += 1
        if ta & OUT_OF_ORDER:
            counts.out_of_order += 1
        if ta & DUPLICATE_ACK:
            counts.duplicate_acks += 1

    def finish(self, conv: Conversation) -> None:
        """Fold a conversation that can no longer change into the per-server totals."""
        server = server_of(conv)
        stats = self.counts.by_server.get(server)
        if stats is None:
            stats = self.counts.by_server[server] = ServerStats()
        stats.connections += 1
        stats.packets += conv.packets
        stats.resets += conv.resets
        stats.zero_windows += conv.zero_windows
        state = conv.completeness & (COMPLETE_SYN | COMPLETE_SYNACK | COMPLETE_RST)
        if state not in (COMPLETE_SYN, COMPLETE_SYN | COMPLETE_RST):
            stats.retransmissions += conv.retransmissions  # SYN retries of failed handshakes are told apart
        if state == COMPLETE_SYN:
            self.counts.unanswered_syns += 1
            stats.unanswered += 1
            stats.unanswered_syn_packets += conv.syn_packets
        elif state == COMPLETE_SYN | COMPLETE_RST:
            self.counts.refused += 1
            stats.refused += 1

    def evict_idle(self, now: int) -> None:
        """Forget conversations idle longer than ``idle_ns``, and the least recent beyond the cap.

        Keeps memory bounded on long captures and SYN floods; a forgotten conversation that speaks
        again starts afresh (where Wireshark would remember it).
        """
        horizon = now - self.idle_ns
        keep = 2 * self.max_conversations  # every conversation has a key per direction
        if len(self.table) > keep:
            ages = sorted(conv.last_ts for conv, _f, _r in self.table.values())
            horizon = max(horizon, ages[len(ages) - keep])
        stale = [key for key, (conv, _f, _r) in self.table.items() if conv.last_ts < horizon]
        for key in stale:
            conv = self.table.pop(key)[0]
            if conv.client_key == key:
                self.finish(conv)

    def close(self) -> TcpCounts:
        """Fold every remaining conversation in once the capture has ended; return the totals."""
        for key, (conv, _f, _r) in self.table.items():
            if conv.client_key == key:
                self.finish(conv)
        self.table.clear()
        return self.counts
