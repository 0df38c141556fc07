"""What the path matching keeps per flow direction and node pair, and the packet identities' layout.

A packet identity (``path_matching``) is bytes: for IPv4 TCP the IP total length and ID, the addresses
and the first 16 bytes of the TCP header; for UDP the ports, length and the first 8 payload bytes (a DNS
message's id and flags); IPv6 has its payload length instead of the IPv4 fields. Their lengths tell the
kinds apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from eks_capture.pcap.dns import DNS_PORTS
from eks_capture.pcap.tcp import reverse_key

MS = 1_000_000
#: How long a packet may take from one node to the other before it is called lost (memory: the packets
#: of the window and the offset, e.g. ~150 MB at 125,000 packets/s on each of two nodes).
WINDOW_NS = 1_000 * MS
#: The largest clock difference between two nodes that the matching allows for (EC2's time sync keeps
#: nodes within a millisecond; a node whose clock is off by more shows as one-sided packets).
MAX_OFFSET_NS = 500 * MS
#: Key lengths tell the protocols apart (IPv4 TCP, IPv4 UDP up to 26, IPv6 TCP, IPv6 UDP up to 48).
TCP4_KEY = 28
TCP6_KEY = 50
#: IPv6 identities are at least this long, IPv4 ones shorter.
IPV6_KEYS = 40
#: Where a UDP identity's payload (a DNS message's id and flags) starts, IPv4 and IPv6.
DNS4, DNS6 = 18, 40
SYN = 0x02


@dataclass
class PairTally:
    """One flow direction's packets seen on both nodes of a pair (``first`` < ``second`` by index)."""

    first: int
    second: int
    matched: int = 0
    #: Extra crossings on one node of the pair beyond the other's, by node index.
    extra: Counter[int] = field(default_factory=Counter)
    #: first sighting on ``second`` minus first sighting on ``first``, in microseconds -> packets.
    diffs: Counter[int] = field(default_factory=Counter)
    #: TCP data that reached the receiver and was seen again (the same sequence number, reached again).
    reached_again: int = 0


@dataclass
class FlowTally:
    """One flow direction (addresses and ports, source first) as all nodes saw it."""

    tcp: bool
    #: Crossings seen on one node only and inside the common window, by node index.
    alone: Counter[int] = field(default_factory=Counter)
    #: Those near the common window's edges, by node index: their times, judged once clocks are known.
    edges: dict[int, list[int]] = field(default_factory=dict)
    #: By ``first << 16 | second``.
    pairs: dict[int, PairTally] = field(default_factory=dict)
    #: Sequence numbers of TCP data delivered in this horizon and the one before (two generations keep
    #: a second arrival within a horizon visible without a per-packet expiry).
    delivered: set[bytes] = field(default_factory=set)
    delivered_before: set[bytes] = field(default_factory=set)
    generation_ts: int = 0
    #: A DNS flow (UDP port 53, 5353 or 5355): queries that reached the other node and await an answer.
    dns: bool = False
    queries: dict[bytes, tuple[int, PairTally]] = field(default_factory=dict)

    def pair(self, first: int, second: int) -> PairTally:
        """The tally of this direction's packets seen on both ``first`` and ``second`` (first < second)."""
        found = self.pairs.get(first << 16 | second)
        if found is None:
            found = self.pairs[first << 16 | second] = PairTally(first, second)
        return found

    def deliver(self, key: bytes, ts: int, horizon: int) -> bool:
        """Note TCP data or a SYN (``key``) that reached the other node at ``ts``; whether it had already."""
        if len(key) == TCP4_KEY:
            if ((key[0] << 8) | key[1]) - 20 - ((key[24] >> 4) << 2) <= 0 and not key[25] & SYN:
                return False
            seq = key[16:20]
        else:
            if ((key[0] << 8) | key[1]) - ((key[46] >> 4) << 2) <= 0 and not key[47] & SYN:
                return False
            seq = key[38:42]
        if ts - self.generation_ts > horizon:
            self.delivered_before, self.delivered = self.delivered, set()
            self.generation_ts = ts
        again = seq in self.delivered or seq in self.delivered_before
        self.delivered.add(seq)
        return again

    def message(self, key: bytes, ts: int, pair: PairTally | None, flows: dict[bytes, FlowTally]) -> None:
        """A DNS message: a query that reached the other node (``pair``) awaits an answer; a response
        seen on any node answers its query (in the reverse flow), whether or not it then got through."""
        start = DNS4 if len(key) < IPV6_KEYS else DNS6
        if len(key) < start + 4:
            return
        ident = key[start : start + 2]
        if key[start + 2] & 0x80:
            flow = key[4:16] if len(key) < IPV6_KEYS else key[2:38]
            reverse = flows.get(reverse_key(flow))
            if reverse is not None:
                reverse.queries.pop(ident, None)
        elif pair is not None:
            self.queries.setdefault(ident, (ts, pair))


@dataclass
class Tallies:
    """What the pass saw: the nodes' spans and every flow direction's tally."""

    nodes: list[str]
    first_ts: list[int | None]
    last_ts: list[int | None]
    packets: list[int]
    flows: dict[bytes, FlowTally] = field(default_factory=dict)
    horizon_ns: int = WINDOW_NS + MAX_OFFSET_NS
    #: When each node's capture ran, where the caller knows it (else its first and last packet).
    spans: list[tuple[int, int] | None] = field(default_factory=list)

    def span(self, node: int) -> tuple[int, int] | None:
        """When ``node``'s capture ran, on its own clock."""
        known = self.spans[node] if node < len(self.spans) else None
        if known is not None:
            return known
        first, last = self.first_ts[node], self.last_ts[node]
        return (first, last) if first is not None and last is not None else None

    def common_window(self) -> tuple[int, int] | None:
        """When every node was capturing (raw clocks): the latest first packet to the earliest last one."""
        starts = [t for t in self.first_ts if t is not None]
        ends = [t for t in self.last_ts if t is not None]
        if not starts or not ends or max(starts) > min(ends):
            return None
        return max(starts), min(ends)


def new_flow(fkey: bytes, size: int) -> FlowTally:
    """The tally of a flow direction first seen now (``size``: its packets' identity length)."""
    tcp = size in (TCP4_KEY, TCP6_KEY)
    ports = (int.from_bytes(fkey[-4:-2], "big"), int.from_bytes(fkey[-2:], "big"))
    return FlowTally(tcp=tcp, dns=not tcp and any(port in DNS_PORTS for port in ports))
