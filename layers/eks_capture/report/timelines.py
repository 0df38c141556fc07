"""Per-node, per-second trouble counts, streamed through the project's reader and analyzers.

The analyzer's own ``scan`` decodes every packet; thin subclasses of its TCP and DNS analyzers note the
second each counted event belongs to, so the series add up to exactly the totals the summary reports:
retransmissions and resets at the segment, an unanswered handshake at its last SYN, a DNS failure at the
error response or, for a query never answered, at the query.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from eks_capture.pcap import CaptureReader, CaptureSummary, summarize
from eks_capture.pcap.analysis import Scan, scan
from eks_capture.pcap.dns import ERROR_RCODES, Address, DnsAnalyzer, TransactionKey
from eks_capture.pcap.reader import Record
from eks_capture.pcap.summaries import UNDECODABLE
from eks_capture.pcap.tcp import COMPLETE_RST, COMPLETE_SYN, COMPLETE_SYNACK, Conversation, TcpAnalyzer
from eks_capture.pcap.tcp_sequence import ANY_RETRANSMISSION, RST
from eks_capture.store.files import FileRecord

NS = 1_000_000_000
#: Gives the bytes of one indexed file (an S3 body or a local file): ``read`` and ``close``.
Opener = Callable[[FileRecord], Any]
SERIES = ("packets", "retransmissions", "resets", "unanswered_syns", "dns_failures")
LABELS = {
    "packets": "packets/s",
    "retransmissions": "retransmissions/s",
    "resets": "resets/s",
    "unanswered_syns": "unanswered SYNs/s",
    "dns_failures": "DNS failures/s",
}


class TimedTcp(TcpAnalyzer):
    """The analyzer's TCP state machine, noting the second of each retransmission, reset and lost SYN."""

    def __init__(self) -> None:
        super().__init__()
        self.retransmissions: Counter[int] = Counter()
        self.resets: Counter[int] = Counter()
        self.unanswered_syns: Counter[int] = Counter()

    def segment(
        self, key: bytes, ts: int, seq: int, ack: int, flags: int, window: int, seglen: int, wirelen: int
    ) -> int:
        """One segment, as the base class analyses it, counted into its second."""
        flagged = super().segment(key, ts, seq, ack, flags, window, seglen, wirelen)
        if flagged & ANY_RETRANSMISSION:
            self.retransmissions[ts // NS] += 1
        if flags & RST:
            self.resets[ts // NS] += 1
        return flagged

    def finish(self, conv: Conversation) -> None:
        """A closed conversation; an unanswered handshake counts at its last SYN."""
        super().finish(conv)
        if conv.completeness & (COMPLETE_SYN | COMPLETE_SYNACK | COMPLETE_RST) == COMPLETE_SYN:
            self.unanswered_syns[conv.mru_syn // NS] += 1


class TimedDns(DnsAnalyzer):
    """The analyzer's DNS matching, noting the second of each error response and unanswered query."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: Counter[int] = Counter()
        self.now = 0

    def message(self, key: TransactionKey, src: Address, dst: Address, ts: int, flags: int) -> None:
        """One DNS message: a query is a failure until it is answered (then it moves out of its second)."""
        if flags & 0x8000:
            if flags & 0x000F in ERROR_RCODES:
                self.failures[ts // NS] += 1
            txn = self.pending.get(key)
            if txn is not None:
                self.failures[txn[0] // NS] -= 1
        else:
            self.failures[ts // NS] += 1
        super().message(key, src, dst, ts, flags)

    def in_error_packet(self, flags: int) -> None:
        """A DNS header quoted in an ICMP error: a failure now when it is a query or an error response."""
        rcode = flags & 0x000F
        if not flags & 0x8000 or rcode in ERROR_RCODES:
            self.failures[self.now // NS] += 1
        super().in_error_packet(flags)


@dataclass
class NodeTimeline:
    """One node's per-second series (seconds since the epoch -> count) and its summary."""

    node: str
    packets: Counter[int] = field(default_factory=Counter)
    retransmissions: Counter[int] = field(default_factory=Counter)
    resets: Counter[int] = field(default_factory=Counter)
    unanswered_syns: Counter[int] = field(default_factory=Counter)
    dns_failures: Counter[int] = field(default_factory=Counter)
    summary: CaptureSummary | None = None
    files: list[FileRecord] = field(default_factory=list)

    def series(self, name: str) -> Counter[int]:
        """The series called ``name`` (one of SERIES)."""
        found: Counter[int] = getattr(self, name)
        return found

    def seconds(self) -> tuple[int, int] | None:
        """The first and last second with packets."""
        return (min(self.packets), max(self.packets)) if self.packets else None


class _Chain:
    """The records of several files in order, as one stream; remembers how each read ended."""

    def __init__(
        self, opener: Opener, records: Iterable[FileRecord], packets: Counter[int], dns: TimedDns
    ) -> None:
        self.opener = opener
        self.records = list(records)
        self.packets = packets
        self.dns = dns
        self.readers: list[CaptureReader] = []

    def __iter__(self) -> Iterator[Record]:
        packets = self.packets
        dns = self.dns
        for record in self.records:
            body = self.opener(record)
            try:
                reader = CaptureReader(body)
                self.readers.append(reader)
                for packet in reader:
                    second = packet[0] // NS
                    packets[second] += 1
                    dns.now = packet[0]
                    yield packet
            finally:
                body.close()

    def combined(self) -> CaptureReader:
        """One reader-shaped account of all files (formats, link types, the first early end)."""
        whole = CaptureReader(io.BytesIO())
        whole.format = "+".join(sorted({r.format for r in self.readers})) or "unknown"
        whole.compression = "+".join(sorted({r.compression for r in self.readers})) or "none"
        for reader in self.readers:
            for link in reader.link_types:
                if link not in whole.link_types:
                    whole.link_types.append(link)
            if reader.partial:
                whole.stop(reader.reason or "ended early")
        return whole


def node_timeline(
    node: str,
    files: Iterable[FileRecord],
    opener: Opener,
    context: Mapping[str, str] | None = None,
) -> NodeTimeline:
    """Stream ``files`` of one node (oldest first) through the analyzer; ``opener(file)`` gives its bytes."""
    ordered = sorted(files, key=lambda f: (f.first_ts is None, f.first_ts, f.s3_key))
    timeline = NodeTimeline(node=node, files=ordered)
    tcp, dns = TimedTcp(), TimedDns()
    result = Scan(tcp=tcp, dns=dns)
    chain = _Chain(opener, ordered, timeline.packets, dns)
    try:
        scan(chain, result)
    except UNDECODABLE as error:
        (chain.readers[-1] if chain.readers else CaptureReader(io.BytesIO())).stop(
            f"undecodable data after {result.packets} packets: {error!r}"
        )
    timeline.summary = summarize(chain.combined(), result, context=context)
    timeline.retransmissions = tcp.retransmissions
    timeline.resets = tcp.resets
    timeline.unanswered_syns = tcp.unanswered_syns
    timeline.dns_failures = +dns.failures
    return timeline
