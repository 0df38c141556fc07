"""DNS query/response matching that agrees with Wireshark 4.0's ``dns.response_in`` (two-pass).

Wireshark keys a transaction by (UDP conversation, DNS id). A query opens a transaction unless the
latest one with that id is still unanswered and under five seconds old; then it is a retransmission,
which never shows ``dns.response_in``. A response answers the latest transaction with its id if that
one has no response yet. So "unanswered" = retransmitted queries + transactions never answered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

RETRANSMISSION_NS = 5 * 1_000_000_000
#: UDP ports Wireshark hands to its DNS dissector (DNS, mDNS, LLMNR all fill the ``dns.*`` fields).
DNS_PORTS = frozenset({53, 5353, 5355})
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3


class Transaction:
    """The latest query with one id in one conversation."""

    __slots__ = ("answered", "server", "ts")

    def __init__(self, ts: int, server: bytes) -> None:
        self.ts = ts
        self.server = server
        self.answered = False


@dataclass
class DnsCounts:
    """Frame counts matching tshark filters, plus who the failures came from (by server address)."""

    queries: int = 0
    responses: int = 0
    nxdomain: int = 0
    servfail: int = 0
    unanswered: int = 0
    servfail_by_server: Counter[bytes] = field(default_factory=Counter)
    nxdomain_by_server: Counter[bytes] = field(default_factory=Counter)
    unanswered_by_server: Counter[bytes] = field(default_factory=Counter)


class DnsAnalyzer:
    """Counts DNS queries, error responses and unanswered queries from UDP payload headers."""

    def __init__(self, idle_ns: int = 900 * 1_000_000_000, max_pending: int = 100_000) -> None:
        self.idle_ns = idle_ns
        self.max_pending = max_pending
        self.counts = DnsCounts()
        self.pending: dict[tuple[bytes, int], Transaction] = {}

    def message(self, conv: bytes, src: bytes, dst: bytes, ts: int, ident: int, flags: int) -> None:
        """One DNS message on the UDP conversation ``conv`` (the same key for both directions)."""
        counts = self.counts
        key = (conv, ident)
        if not flags & 0x8000:
            counts.queries += 1
            txn = self.pending.get(key)
            if txn is not None and not txn.answered and ts - txn.ts < RETRANSMISSION_NS:
                counts.unanswered += 1
                counts.unanswered_by_server[dst] += 1
                return
            self.pending[key] = Transaction(ts, dst)
            counts.unanswered += 1
            counts.unanswered_by_server[dst] += 1
            return
        counts.responses += 1
        rcode = flags & 0x000F
        if rcode == RCODE_SERVFAIL:
            counts.servfail += 1
            counts.servfail_by_server[src] += 1
        elif rcode == RCODE_NXDOMAIN:
            counts.nxdomain += 1
            counts.nxdomain_by_server[src] += 1
        txn = self.pending.get(key)
        if txn is not None and not txn.answered:
            txn.answered = True
            counts.unanswered -= 1
            counts.unanswered_by_server[txn.server] -= 1
            del self.pending[key]

    def in_error_packet(self, flags: int) -> None:
        """A DNS header quoted inside an ICMP error: Wireshark counts it but never matches it."""
        counts = self.counts
        if flags & 0x8000:
            counts.responses += 1
            rcode = flags & 0x000F
            if rcode == RCODE_SERVFAIL:
                counts.servfail += 1
            elif rcode == RCODE_NXDOMAIN:
                counts.nxdomain += 1
        else:
            counts.queries += 1
            counts.unanswered += 1

    def evict_idle(self, now: int) -> None:
        """Forget unanswered transactions older than ``idle_ns`` or beyond the cap (still counted)."""
        horizon = now - self.idle_ns
        if len(self.pending) > self.max_pending:
            ages = sorted(txn.ts for txn in self.pending.values())
            horizon = max(horizon, ages[len(ages) - self.max_pending])
        for key in [key for key, txn in self.pending.items() if txn.ts < horizon]:
            del self.pending[key]
