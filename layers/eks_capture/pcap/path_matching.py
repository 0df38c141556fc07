"""Match the same packet across the capture files of several nodes, in one time-ordered pass.

Every node's records are merged by time (the merge's order: at each step the node whose next packet is
earliest gives it). A packet's identity is the bytes that do not change between two nodes: IP total
length and ID, addresses, and for TCP ports, sequence and acknowledgement numbers, header length, flags
and window (for UDP ports, length and the first payload bytes: a DNS message's id and flags). IPv4
retransmissions carry a new IP ID, so each copy a sender puts on the wire is a packet of its own; for
identities that repeat (IPv6, ID 0), each node's sightings of one identity more than ``PASS_NS`` apart
count as separate crossings, matched in number.

A packet waits in ``pending`` until the stream has moved ``horizon`` past its first sighting (the
matching window plus the largest clock offset allowed), then it is settled into its flow's tally: seen
on two nodes (delivered, with the time between the first sightings), or on one node only. Memory is the
packets of one horizon, whatever the capture's length. Which node sent a flow and by how much the
nodes' clocks differ is decided at the end (``paths``), from the tallies alone.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence

from eks_capture.pcap import linktypes
from eks_capture.pcap.analysis import ETH_IPV4, ETH_IPV6, ETH_VLANS, IPV6_EXTENSIONS
from eks_capture.pcap.path_tallies import (
    IPV6_KEYS,
    MAX_OFFSET_NS,
    MS,
    SYN,
    TCP4_KEY,
    WINDOW_NS,
    FlowTally,
    Tallies,
    new_flow,
)
from eks_capture.pcap.reader import Record

#: Sightings of one packet on one node closer than this are one crossing (e.g. a pod's veth, then eth0).
PASS_NS = 1 * MS
#: Packets are settled in batches, every this many records.
SETTLE_EVERY = 1024
NEVER = 1 << 62
#: The usual frame, decoded in one call: Ethernet type, IPv4 version/IHL, fragment field and protocol.
ETHERNET_IPV4 = struct.Struct(">12xHBx4xHxB")
ETHERNET_TCP4 = 14 + 20 + 16
#: The same behind a Linux cooked v2 header (``tcpdump -i any``, what the capture agent runs).
SLL2_IPV4 = struct.Struct(">H18xBx4xHxB")
SLL2_TCP4 = 20 + 20 + 16
_IP_LINKS = (linktypes.RAW, *linktypes.RAW_ALIASES, linktypes.IPV4, linktypes.IPV6)


class _Settler:
    """Turns waiting packets into tallies, knowing where the capture's common window begins and ends."""

    def __init__(self, tallies: Tallies, horizon: int) -> None:
        self.tallies = tallies
        self.flows = tallies.flows
        self.horizon = horizon
        starts = [t for t in tallies.first_ts if t is not None]
        self.start_edge = max(starts) + horizon if starts else 0
        self.end_edge: int | None = None

    def stream_ended(self, last_ts: int) -> None:
        """A node's records ended: packets of its last horizon are at the common window's end."""
        edge = last_ts - self.horizon
        self.end_edge = edge if self.end_edge is None else min(self.end_edge, edge)

    def settle(self, key: bytes, entry: list[int], flow: FlowTally) -> None:
        """One packet: delivered between nodes, or seen on one node only (the general case)."""
        if len(entry) == 4:
            ts = entry[1]
            if ts < self.start_edge or (self.end_edge is not None and ts > self.end_edge):
                flow.edges.setdefault(entry[0], []).extend([ts] * entry[3])
            else:
                flow.alone[entry[0]] += entry[3]
            if flow.dns:
                flow.message(key, ts, None, self.flows)
            return
        sightings = sorted((entry[i], entry[i + 1], entry[i + 3]) for i in range(0, len(entry), 4))
        for (first, first_ts, first_n), (second, second_ts, second_n) in itertools.pairwise(sightings):
            pair = flow.pair(first, second)
            both = min(first_n, second_n)
            pair.matched += both
            if first_n != second_n:
                pair.extra[first if first_n > second_n else second] += abs(first_n - second_n)
            pair.diffs[(second_ts - first_ts) // 1000] += both
            if flow.tcp and flow.deliver(key, min(first_ts, second_ts), self.horizon):
                pair.reached_again += 1
            elif flow.dns:
                flow.message(key, min(first_ts, second_ts), pair, self.flows)


class _Matcher:
    """The pass's state: packets waiting for their other sightings, in two generations of a horizon.

    A packet first seen in the current generation is settled when the generation after the next
    begins, so it waits at least a horizon; whole generations are settled at once (no per-packet
    expiry queue).
    """

    def __init__(self, tallies: Tallies, horizon: int) -> None:
        self.tallies = tallies
        self.horizon = horizon
        self.settler = _Settler(tallies, horizon)
        self.pending: dict[bytes, list[int]] = {}
        self.older: dict[bytes, list[int]] = {}
        self.generation_ts: int | None = None
        #: Records until the next look at the clock (runs of one node are often shorter than this).
        self.countdown = SETTLE_EVERY

    def turn(self, ts: int) -> None:
        """Start a new generation at ``ts`` when the current one is a horizon old, settling the older."""
        if self.generation_ts is None:
            self.generation_ts = ts
        elif ts - self.generation_ts >= self.horizon:
            self.settle(self.older)
            self.older, self.pending = self.pending, {}
            self.generation_ts = ts

    def settle_all(self) -> None:
        """Settle every packet still waiting (the records ended)."""
        self.settle(self.older)
        self.settle(self.pending)
        self.older, self.pending = {}, {}

    def settle(self, generation: dict[bytes, list[int]]) -> None:
        """Settle a generation's packets; the common case inline: one crossing on each of two nodes."""
        flows, horizon, settle = self.tallies.flows, self.horizon, self.settler.settle
        for key, entry in generation.items():
            size = len(key)
            fkey = key[4:16] if size < IPV6_KEYS else key[2:38]
            flow = flows.get(fkey)
            if flow is None:
                flow = flows[fkey] = new_flow(fkey, size)
            if len(entry) != 8 or entry[3] != 1 or entry[7] != 1:
                settle(key, entry, flow)
                continue
            first, second = entry[0], entry[4]
            if first < second:
                pair = flow.pairs.get(first << 16 | second) or flow.pair(first, second)
                diff = entry[5] - entry[1]
            else:
                pair = flow.pairs.get(second << 16 | first) or flow.pair(second, first)
                diff = entry[1] - entry[5]
            pair.matched += 1
            pair.diffs[diff // 1000] += 1
            if size == TCP4_KEY:  # FlowTally.deliver, inline
                if ((key[0] << 8) | key[1]) - 20 - ((key[24] >> 4) << 2) > 0 or key[25] & SYN:
                    seq = key[16:20]
                    if entry[1] - flow.generation_ts > horizon:
                        flow.delivered_before, flow.delivered = flow.delivered, set()
                        flow.generation_ts = entry[1]
                    if seq in flow.delivered or seq in flow.delivered_before:
                        pair.reached_again += 1
                    flow.delivered.add(seq)
            elif flow.tcp:
                if flow.deliver(key, entry[1], horizon):
                    pair.reached_again += 1
            elif flow.dns:
                flow.message(key, entry[1], pair, flows)

    def run(self, record: Record, records: Iterator[Record], node: int, bound: int) -> Record | None:
        """Observe ``record`` and the node's next records up to time ``bound``; the first one after it."""
        pending = self.pending
        older = self.older
        ip_links = _IP_LINKS
        packets = 0
        last = self.tallies.last_ts[node]
        latest = -1 if last is None else last
        countdown = self.countdown
        ethernet_ipv4 = ETHERNET_IPV4.unpack_from
        sll2_ipv4 = SLL2_IPV4.unpack_from
        try:
            while True:
                ts, link, buf, off, caplen, _wirelen = record
                packets += 1
                if ts > latest:
                    latest = ts
                key = None
                if link == 1 and caplen >= ETHERNET_TCP4:
                    ether, vihl, frag, proto = ethernet_ipv4(buf, off)
                    if ether == ETH_IPV4 and vihl == 0x45 and not frag & 0x3FFF and proto == 6:
                        key = buf[off + 16 : off + 20] + buf[off + 26 : off + 50]
                elif link == 276 and caplen >= SLL2_TCP4:  # tcpdump -i any
                    ether, vihl, frag, proto = sll2_ipv4(buf, off)
                    if ether == ETH_IPV4 and vihl == 0x45 and not frag & 0x3FFF and proto == 6:
                        key = buf[off + 22 : off + 26] + buf[off + 32 : off + 56]
                if key is None:
                    end = off + caplen
                    if link == 1:
                        ether = (buf[off + 12] << 8) | buf[off + 13] if caplen >= 14 else 0
                        l3 = off + 14
                        while ether in ETH_VLANS and l3 + 4 <= end:
                            ether = (buf[l3 + 2] << 8) | buf[l3 + 3]
                            l3 += 4
                    elif link == 276:
                        ether = (buf[off] << 8) | buf[off + 1] if caplen >= 20 else 0
                        l3 = off + 20
                    elif link == 113:
                        ether = (buf[off + 14] << 8) | buf[off + 15] if caplen >= 16 else 0
                        l3 = off + 16
                    elif link in ip_links and caplen:
                        version = buf[off] >> 4
                        ether = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
                        l3 = off
                    else:
                        ether = 0
                    if ether == ETH_IPV4 and end - l3 >= 20:
                        ihl = (buf[l3] & 15) << 2
                        l4 = l3 + ihl
                        if ihl >= 20 and not ((buf[l3 + 6] << 8) | buf[l3 + 7]) & 0x3FFF:
                            proto = buf[l3 + 9]
                            if proto == 6 and end - l4 >= 16:
                                if ihl == 20:  # addresses and the TCP header are one run of bytes
                                    key = buf[l3 + 2 : l3 + 6] + buf[l3 + 12 : l3 + 36]
                                else:
                                    key = buf[l3 + 2 : l3 + 6] + buf[l3 + 12 : l3 + 20] + buf[l4 : l4 + 16]
                            elif proto == 17 and end - l4 >= 8:
                                key = buf[l3 + 2 : l3 + 6] + buf[l3 + 12 : l3 + 20] + buf[l4 : l4 + 6]
                                key += buf[l4 + 8 : l4 + 16]
                    elif ether == ETH_IPV6 and end - l3 >= 40:
                        proto = buf[l3 + 6]
                        l4 = l3 + 40
                        while proto in IPV6_EXTENSIONS and end - l4 >= 8:
                            proto = buf[l4]
                            l4 += (buf[l4 + 1] + 1) << 3
                        if proto == 6 and end - l4 >= 16:
                            key = buf[l3 + 4 : l3 + 6] + buf[l3 + 8 : l3 + 40] + buf[l4 : l4 + 16]
                        elif proto == 17 and end - l4 >= 8:
                            key = buf[l3 + 4 : l3 + 6] + buf[l3 + 8 : l3 + 40] + buf[l4 : l4 + 6]
                            key += buf[l4 + 8 : l4 + 16]
                if key is not None:
                    entry = pending.get(key)
                    if entry is None and older:
                        entry = older.get(key)
                    if entry is None:
                        pending[key] = [node, ts, ts, 1]
                    elif entry[0] == node:
                        if ts - entry[2] > PASS_NS:
                            entry[3] += 1
                        entry[2] = ts
                    elif len(entry) == 4:
                        entry += (node, ts, ts, 1)
                    else:
                        for at in range(4, len(entry), 4):
                            if entry[at] == node:
                                if ts - entry[at + 2] > PASS_NS:
                                    entry[at + 3] += 1
                                entry[at + 2] = ts
                                break
                        else:
                            entry += (node, ts, ts, 1)
                countdown -= 1
                if not countdown:
                    countdown = SETTLE_EVERY
                    self.turn(ts)
                    pending, older = self.pending, self.older
                nxt = next(records, None)
                if nxt is None or nxt[0] > bound:
                    return nxt
                record = nxt
        finally:
            self.countdown = countdown
            self.tallies.packets[node] += packets
            self.tallies.last_ts[node] = latest


def match(
    nodes: Sequence[tuple[str, Iterable[Record]]],
    *,
    window_ns: int = WINDOW_NS,
    max_offset_ns: int = MAX_OFFSET_NS,
    spans: Sequence[tuple[int, int] | None] | None = None,
) -> Tallies:
    """Match the packets of every node's records (each in time order) in one merged pass.

    ``spans`` are the times each node's capture started and stopped, where known: a packet sent while
    the other node was not capturing is never called lost.
    """
    horizon = window_ns + max_offset_ns
    iterators = [iter(records) for _name, records in nodes]
    heads = [next(it, None) for it in iterators]
    tallies = Tallies(
        nodes=[name for name, _records in nodes],
        first_ts=[h[0] if h is not None else None for h in heads],
        last_ts=[None] * len(nodes),
        packets=[0] * len(nodes),
        horizon_ns=horizon,
        spans=list(spans or []),
    )
    matcher = _Matcher(tallies, horizon)
    heap = [(h[0], index, h) for index, h in enumerate(heads) if h is not None]
    heapq.heapify(heap)
    collecting = gc.isenabled()
    gc.disable()  # the waiting packets hold no cycles, yet collections over them cost a third of the pass
    try:
        _merged(matcher, iterators, heap)
    finally:
        if collecting:
            gc.enable()
    matcher.settle_all()
    return tallies


def _merged(
    matcher: _Matcher, iterators: list[Iterator[Record]], heap: list[tuple[int, int, Record]]
) -> None:
    """Feed the matcher every node's records, a run of one node at a time, in the merge's order."""
    tallies = matcher.tallies
    while heap:
        _ts, node, record = heap[0]
        bound = min(heap[1][0], heap[2][0]) if len(heap) > 2 else heap[1][0] if len(heap) == 2 else NEVER
        nxt = matcher.run(record, iterators[node], node, bound)
        if nxt is None:
            heapq.heappop(heap)
            last = tallies.last_ts[node]
            if last is not None:
                matcher.settler.stream_ended(last)
        else:
            heapq.heapreplace(heap, (nxt[0], node, nxt))
