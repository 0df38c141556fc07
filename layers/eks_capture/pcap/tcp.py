"""TCP sequence analysis that flags exactly the segments Wireshark 4.0's ``tcp.analysis.*`` flags.

A transcription of the conversation handling of ``dissect_tcp`` and of ``tcp_analyze_sequence_number``
(in tcp_sequence.py; epan/dissectors/packet-tcp.c, default preferences: relative sequence numbers,
fast-retransmission precedence, first-RTT out-of-order threshold). Only the parts that decide the counted
flags are kept.
Differences, by design: the unacked-segment list (it only feeds bytes-in-flight and RTO display) is not
kept, so its 10000-segment cap is not modelled; conversations idle for ``idle_ns`` are forgotten so
memory stays bounded (Wireshark keeps them for the whole file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eks_capture.pcap.tcp_sequence import (
    ACK,
    ANY_RETRANSMISSION,
    DUPLICATE_ACK,
    FAST_RETRANSMISSION,
    HALF,
    M32,
    OUT_OF_ORDER,
    RST,
    SPURIOUS_RETRANSMISSION,
    SYN,
    SYN_ACK,
    SYN_FIN_RST,
    SYN_RST,
    ZERO_WINDOW,
    Flow,
    acked_unseen,
    analyze_segment,
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
        "flows",
        "last_ts",
        "mru_syn",
        "resets",
        "retransmissions",
        "syn_packets",
        "zero_windows",
    )

    def __init__(self, client_key: bytes, ts: int, flows: tuple[Flow, Flow]) -> None:
        self.client_key = client_key
        #: the flow in ``client_key``'s direction, then the flow back
        self.flows = flows
        self.mru_syn = 0
        self.first_rtt = 0
        self.last_ts = ts
        self.completeness = 0
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
        #: (src, dst addresses as raw bytes) -> [bytes, packets] of the finished conversations' segments
        self.pairs: dict[bytes, list[int]] = {}

    def _new(self, key: bytes, ts: int) -> tuple[Conversation, Flow, Flow]:
        a, b = Flow(), Flow()
        conv = Conversation(key, ts, (a, b))
        self.table[key] = (conv, a, b)
        self.table[reverse_key(key)] = (conv, b, a)
        self.counts.connections += 1
        return conv, a, b

    def segment(
        self, key: bytes, ts: int, seq: int, ack: int, flags: int, window: int, seglen: int, wirelen: int
    ) -> int:
        """Analyse one segment (``seglen`` < 0: length unknown, header only); return its analysis flags.

        This runs once per TCP packet, so the common case is inlined: a segment that goes on in order where
        its flow left off, window open, no SYN, FIN or RST (most segments of any capture) meets only two
        of ``analyze_segment``'s checks; any other segment goes through it. ``wirelen``, the frame's
        length, is counted in the flow (the traffic between its addresses).
        """
        entry = self.table.get(key)
        if entry is None:
            conv, fwd, rev = self._new(key, ts)
            if flags & SYN_ACK == SYN:
                conv.completeness |= COMPLETE_SYN
        else:
            conv, fwd, rev = entry
            if flags & SYN_RST:
                conv, fwd, rev = self._syn_or_reset(key, ts, seq, flags, conv, fwd, rev)
        conv.last_ts = ts
        fwd.packets += 1
        fwd.octets += wirelen
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
            if (
                seq == nextseq
                and nextseq
                and window
                and not flags & SYN_FIN_RST
                and (seglen > 1 or (seglen == 0 and ack != lastack))
            ):
                # Neither a zero-window probe, zero window, lost segment, keep-alive nor duplicate ACK, and
                # not behind its flow: only an ACK of unseen data or a spurious retransmission can be.
                if ack != lastack:
                    fwd.dupacknum = 0
                if rev.maxseqtobeacked and ((rev.maxseqtobeacked - ack) & M32) >= HALF and flags & ACK:
                    ta = acked_unseen(rev)
                if seglen:
                    rev_lastack = rev.lastack
                    if rev_lastack and ((rev_lastack - (seq + seglen)) & M32) < HALF:
                        ta |= SPURIOUS_RETRANSMISSION
                    fwd.nextseq = nextseq = (seq + seglen) & M32
                    fwd.nextseqtime = ts
                if seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked:
                    fwd.maxseqtobeacked = nextseq
                fwd.window = window
                fwd.lastack = ack
                fwd.lastacktime = ts
                fwd.lastsegmentflags = ta
                if not conv.first_rtt and conv.mru_syn and flags & ACK:
                    conv.first_rtt = ts - conv.mru_syn
                if ta:
                    self._count(conv, ta)
                return ta
            ta = analyze_segment(fwd, rev, conv.first_rtt, ts, seq, ack, flags, window, seglen)
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
        """Fold a conversation that can no longer change into the per-server and address-pair totals."""
        forward, backward = conv.flows
        key = conv.client_key
        for flow, ends in ((forward, key), (backward, reverse_key(key))):
            if flow.packets:
                pair = self.pairs.setdefault(ends[:-4], [0, 0])
                pair[0] += flow.octets
                pair[1] += flow.packets
        server = server_of(conv)
        stats = self.counts.by_server.get(server)
        if stats is None:
            stats = self.counts.by_server[server] = ServerStats()
        stats.connections += 1
        stats.packets += forward.packets + backward.packets
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
