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
ERROR_RCODES = (RCODE_SERVFAIL, RCODE_NXDOMAIN)


Address = int | bytes
#: A DNS transaction's key: the conversation's two endpoints in a canonical order, and the DNS id
#: (IPv4: the addresses, the ports and the id as ints; IPv6: address + port bytes of each end and the id).
TransactionKey = tuple[int | bytes, ...]


def raw_address(address: Address) -> bytes:
    """The 4 or 16 bytes of an address the decoder handed over as an int (IPv4) or bytes (IPv6)."""
    return address.to_bytes(4, "big") if isinstance(address, int) else address


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
    """Counts DNS queries, error responses and unanswered queries from UDP payload headers.

    Only unanswered transactions are kept (key -> query time, server): an answer removes its
    transaction, and a transaction is counted as unanswered once it can no longer be answered (a newer
    query took its place, it was evicted, or the capture ended: ``close``).
    """

    def __init__(self, idle_ns: int = 900 * 1_000_000_000, max_pending: int = 100_000) -> None:
        self.idle_ns = idle_ns
        self.max_pending = max_pending
        self.counts = DnsCounts()
        self.queries = 0
        self.responses = 0
        self.pending: dict[TransactionKey, tuple[int, Address]] = {}

    def message(self, key: TransactionKey, src: Address, dst: Address, ts: int, flags: int) -> None:
        """One DNS message with the transaction ``key`` (the same for both directions)."""
        if flags & 0x8000:
            self.responses += 1
            rcode = flags & 0x000F
            if rcode in ERROR_RCODES:
                self._error(rcode, raw_address(src))
            self.pending.pop(key, None)
            return
        self.queries += 1
        txn = self.pending.get(key)
        if txn is not None:
            if ts - txn[0] < RETRANSMISSION_NS:
                self._unanswered(dst)  # a retransmission: Wireshark never matches it to a response
                return
            self._unanswered(txn[1])  # the older transaction can no longer be answered
        self.pending[key] = (ts, dst)

    def _error(self, rcode: int, server: bytes) -> None:
        counts = self.counts
        if rcode == RCODE_SERVFAIL:
            counts.servfail += 1
            counts.servfail_by_server[server] += 1
        else:
            counts.nxdomain += 1
            counts.nxdomain_by_server[server] += 1

    def _unanswered(self, server: Address) -> None:
        self.counts.unanswered += 1
        self.counts.unanswered_by_server[raw_address(server)] += 1

    def in_error_packet(self, flags: int) -> None:
        """A DNS header quoted inside an ICMP error: Wireshark counts it but never matches it."""
        counts = self.counts
        if flags & 0x8000:
            self.responses += 1
            rcode = flags & 0x000F
            if rcode == RCODE_SERVFAIL:
                counts.servfail += 1
            elif rcode == RCODE_NXDOMAIN:
                counts.nxdomain += 1
        else:
            self.queries += 1
            counts.unanswered += 1

    def evict_idle(self, now: int) -> None:
        """Forget unanswered transactions older than ``idle_ns`` or beyond the cap (counted as unanswered)."""
        horizon = now - self.idle_ns
        if len(self.pending) > self.max_pending:
            ages = sorted(txn[0] for txn in self.pending.values())
            horizon = max(horizon, ages[len(ages) - self.max_pending])
        for key in [key for key, txn in self.pending.items() if txn[0] < horizon]:
            self._unanswered(self.pending.pop(key)[1])

    def close(self) -> DnsCounts:
        """Count every transaction still unanswered once the capture has ended; return the totals."""
        for _ts, server in self.pending.values():
            self._unanswered(server)
        self.pending.clear()
        self.counts.queries = self.queries
        self.counts.responses = self.responses
        return self.counts
