"""Where packets were lost: each flow seen on two nodes, from the sender's node through the network.

The matching (``path_matching``) says which packets both nodes saw and which only one saw; this module
decides the rest from those tallies alone:

- Which way a flow direction travels. Of a conversation's two directions matched on the same two nodes,
  the one whose times between the nodes are larger goes from the first node to the second: whatever the
  clocks' offset, it adds to both directions alike and the delays split them. A direction without its
  reverse goes the way the cluster context places its addresses, else the way its times point.
- Each node pair's clock offset: ``(min delay A→B - min delay B→A) / 2`` from the directions decided
  above (NTP's estimate, exact when the fastest packets took as long each way). One-way delays are then
  corrected by it; counts never depend on it, because packets are matched by what they are, not when.
- What became of each packet a node sent: reached the other node, lost between, or sent while the other
  node was not capturing (in flight when a capture started or stopped: stated, never counted as lost).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from eks_capture.pcap.path_matching import match
from eks_capture.pcap.path_tallies import FlowTally, PairTally, Tallies
from eks_capture.pcap.reader import Record
from eks_capture.pcap.tcp import reverse_key

SCHEMA_VERSION = 1
US = 1000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Delay(_Frozen):
    """One-way delay of a flow direction's delivered packets, in milliseconds (clock offset removed)."""

    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class ClockOffset(_Frozen):
    """How far ``node_b``'s clock is ahead of ``node_a``'s, estimated from their matched packets."""

    node_a: str
    node_b: str
    offset_ms: float | None  # None: no conversation was seen both ways, the delays include the offset
    packets: int


class FlowPath(_Frozen):
    """One flow direction from the sending node, through the network, to the receiving node."""

    protocol: str
    source: str
    destination: str
    source_name: str | None = None
    destination_name: str | None = None
    from_node: str
    to_node: str
    sent: int  # crossings of the sender's capture point, from_node
    reached: int  # of those, seen at to_node
    lost_between: int  # left from_node while to_node was capturing, never seen at to_node
    in_flight: int  # left from_node while to_node's capture was starting or stopping: not judged
    reached_again: int  # TCP data or SYNs that reached to_node and had to be sent again (dropped there?)
    unanswered: int = 0  # DNS queries that reached to_node and were never answered
    duplicated: int  # seen at to_node more times than it left from_node
    unseen_leaving: int  # seen at to_node, never at from_node (the sender's capture missed it)
    delay: Delay | None = None


class LinkPath(_Frozen):
    """All flows from one node to another: the picture of that direction through the network."""

    from_node: str
    to_node: str
    flows: int
    sent: int
    reached: int
    lost_between: int
    in_flight: int
    reached_again: int
    unanswered: int = 0
    duplicated: int
    unseen_leaving: int
    delay: Delay | None = None


class PathSummary(_Frozen):
    """The path analysis of one capture: node pairs' clocks, each direction between two nodes, and
    every flow seen on two nodes (worst first)."""

    schema_version: int = SCHEMA_VERSION
    nodes: list[str]
    packets: dict[str, int]
    window_ms: float
    clocks: list[ClockOffset]
    links: list[LinkPath] = []
    flows: list[FlowPath]

    def findings(self, limit: int = 5) -> list[str]:
        """Plain sentences about the worst flows, for notifications and the report."""
        troubled = [f for f in self.flows if f.lost_between or f.reached_again or f.unanswered]
        return [sentence(flow) for flow in troubled[:limit]]


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {plural or word + 's'}"


def sentence(flow: FlowPath) -> str:
    """E.g. "42 of 10,310 packets from checkout-7f9c on node A to ledger-0 on node B were lost ..."."""
    source = flow.source_name or flow.source
    destination = flow.destination_name or flow.destination
    where = f"from {source} on node {flow.from_node} to {destination} on node {flow.to_node}"
    lost = f"{flow.lost_between:,} of {_plural(flow.sent, 'packet')} {where}"
    if flow.lost_between:
        text = f"{lost} were lost between the nodes"
    else:
        text = f"none of {_plural(flow.sent, 'packet')} {where} were lost between the nodes"
    if flow.reached_again:
        text += (
            f"; {_plural(flow.reached_again, 'segment')} reached node {flow.to_node} and had to be sent "
            "again (dropped on that node after the capture point, or its acknowledgement was lost)"
        )
    if flow.unanswered:
        queries = _plural(flow.unanswered, "DNS query", "DNS queries")
        verb = "was" if flow.unanswered == 1 else "were"
        text += f"; {queries} reached node {flow.to_node} and {verb} never answered"
    if flow.lost_between and not (flow.reached_again or flow.unanswered):
        text += "; none on either node"
    return text


@dataclass
class _Direction:
    """A flow direction's verdict: its main node pair and which of the two sends."""

    key: bytes
    tally: FlowTally
    pair: tuple[int, int]
    counts: PairTally
    forward: bool | None = None  # True: pair[0] sends to pair[1]


def _median(diffs: Counter[int]) -> float:
    values = sorted(diffs.items())
    half = sum(diffs.values()) / 2
    seen = 0
    for value, count in values:
        seen += count
        if seen >= half:
            return float(value)
    return 0.0


def _percentile(values: list[tuple[int, int]], total: int, fraction: float) -> int:
    """Nearest-rank percentile of sorted (value, count) pairs."""
    rank = max(1, int(-(-fraction * total // 1)))
    seen = 0
    for value, count in values:
        seen += count
        if seen >= rank:
            return value
    return values[-1][0]


def _delays(diffs: Counter[int], forward: bool, offset_us: float) -> Counter[int]:
    """One-way delays in microseconds -> packets, from times between the nodes and their clock offset."""
    delays: Counter[int] = Counter()
    for diff, count in diffs.items():
        delays[round((diff - offset_us) if forward else (offset_us - diff))] += count
    return delays


def _delay(delays: Counter[int]) -> Delay | None:
    """The distribution of one-way delays (microseconds -> packets) in milliseconds."""
    if not delays:
        return None
    ordered = sorted(delays.items())
    total = sum(delays.values())
    ms = [_percentile(ordered, total, f) / 1000 for f in (0.5, 0.9, 0.99)]
    return Delay(
        min_ms=ordered[0][0] / 1000, p50_ms=ms[0], p90_ms=ms[1], p99_ms=ms[2], max_ms=ordered[-1][0] / 1000
    )


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _endpoints(key: bytes) -> tuple[str, str, str, str]:
    """Source and destination ``ip:port`` and their addresses, from a flow key."""
    half = (len(key) - 4) // 2
    src, dst = _address(key[:half]), _address(key[half : 2 * half])
    sport, dport = int.from_bytes(key[-4:-2], "big"), int.from_bytes(key[-2:], "big")
    wrap = "[{}]:{}" if half == 16 else "{}:{}"
    return wrap.format(src, sport), wrap.format(dst, dport), src, dst


def _decide(directions: dict[bytes, _Direction], owners: Mapping[str, str], nodes: Sequence[str]) -> None:
    """Which node of its pair sends each direction: by its reverse, else the cluster context, else later."""
    for key, direction in directions.items():
        reverse = directions.get(reverse_key(key))
        if reverse is None or reverse.pair != direction.pair or direction.forward is not None:
            continue
        mine, theirs = _median(direction.counts.diffs), _median(reverse.counts.diffs)
        if mine != theirs:
            direction.forward, reverse.forward = mine > theirs, mine < theirs
    for key, direction in directions.items():
        if direction.forward is None:
            _source, _destination, src, dst = _endpoints(key)
            first, second = (nodes[i] for i in direction.pair)
            if owners.get(src) == first or owners.get(dst) == second:
                direction.forward = True
            elif owners.get(src) == second or owners.get(dst) == first:
                direction.forward = False


def _offsets(directions: Iterable[_Direction]) -> dict[tuple[int, int], tuple[float | None, int]]:
    """Each pair's clock offset in microseconds (second node's clock minus the first's) and its basis."""
    fastest: dict[tuple[int, int], list[float | None]] = {}
    packets: Counter[tuple[int, int]] = Counter()
    for direction in directions:
        if direction.forward is None or not direction.counts.diffs:
            continue
        low = fastest.setdefault(direction.pair, [None, None])
        packets[direction.pair] += direction.counts.matched
        if direction.forward:
            value = min(direction.counts.diffs)
            low[0] = value if low[0] is None else min(low[0], value)
        else:
            value = max(direction.counts.diffs)
            low[1] = value if low[1] is None else max(low[1], value)
    return {
        pair: ((ahead + behind) / 2 if ahead is not None and behind is not None else None, packets[pair])
        for pair, (ahead, behind) in fastest.items()
    }


def _edges(
    tallies: Tallies, times: list[int], receiver: int, offset_ns: float, slowest_ns: float
) -> tuple[int, int]:
    """Sender-only packets near the capture's edges: (lost between, in flight) once clocks are known."""
    span = tallies.span(receiver)
    if span is None:
        return 0, len(times)
    lost = sum(1 for t in times if span[0] <= t + offset_ns and t + offset_ns + slowest_ns <= span[1])
    return lost, len(times) - lost


def summarize_paths(
    tallies: Tallies,
    *,
    names: Mapping[str, str] | None = None,
    owners: Mapping[str, str] | None = None,
) -> PathSummary:
    """Conclusions from the matching; ``names`` maps IP -> name, ``owners`` IP -> the node it lives on."""
    names, owners = names or {}, owners or {}
    directions: dict[bytes, _Direction] = {}
    for key, tally in tallies.flows.items():
        if tally.pairs:
            counts = max(tally.pairs.values(), key=lambda pair: (pair.matched, pair.first, pair.second))
            directions[key] = _Direction(key, tally, (counts.first, counts.second), counts)
    _decide(directions, owners, tallies.nodes)
    offsets = _offsets(directions.values())
    slowest: dict[tuple[int, int], float] = {}
    for direction in directions.values():
        offset = offsets.get(direction.pair, (None, 0))[0] or 0.0
        if direction.forward is None:
            direction.forward = _median(direction.counts.diffs) >= offset
        delays = _delays(direction.counts.diffs, direction.forward, offset)
        if delays:
            slowest[direction.pair] = max(slowest.get(direction.pair, 0.0), max(delays) * 1000.0)
    flows: list[FlowPath] = []
    link_delays: dict[tuple[str, str], Counter[int]] = {}
    for direction in directions.values():
        offset = offsets.get(direction.pair, (None, 0))[0] or 0.0
        delays = _delays(direction.counts.diffs, bool(direction.forward), offset)
        flow = _flow(direction, tallies, names, offsets, slowest, _delay(delays))
        link_delays.setdefault((flow.from_node, flow.to_node), Counter()).update(delays)
        flows.append(flow)
    flows.sort(key=lambda f: (-f.lost_between, -f.lost_between / max(f.sent, 1), -f.reached_again, -f.sent))
    return PathSummary(
        nodes=list(tallies.nodes),
        packets=dict(zip(tallies.nodes, tallies.packets, strict=True)),
        window_ms=tallies.horizon_ns / 1e6,
        clocks=[
            ClockOffset(
                node_a=tallies.nodes[pair[0]],
                node_b=tallies.nodes[pair[1]],
                offset_ms=None if offset is None else round(offset / 1000, 3),
                packets=packets,
            )
            for pair, (offset, packets) in sorted(offsets.items())
        ],
        links=[_link(flows, ends, _delay(delays)) for ends, delays in sorted(link_delays.items())],
        flows=flows,
    )


def _link(flows: list[FlowPath], ends: tuple[str, str], delay: Delay | None) -> LinkPath:
    mine = [f for f in flows if (f.from_node, f.to_node) == ends]
    counts = ("sent", "reached", "lost_between", "in_flight", "reached_again", "unanswered")
    totals = {name: sum(getattr(f, name) for f in mine) for name in (*counts, "duplicated", "unseen_leaving")}
    return LinkPath(from_node=ends[0], to_node=ends[1], flows=len(mine), delay=delay, **totals)


def _flow(
    direction: _Direction,
    tallies: Tallies,
    names: Mapping[str, str],
    offsets: Mapping[tuple[int, int], tuple[float | None, int]],
    slowest: Mapping[tuple[int, int], float],
    delay: Delay | None,
) -> FlowPath:
    first, second = direction.pair
    sender, receiver = (first, second) if direction.forward else (second, first)
    offset_us = offsets.get(direction.pair, (None, 0))[0] or 0.0
    offset_ns = (offset_us if direction.forward else -offset_us) * US
    counts, tally = direction.counts, direction.tally
    edge_lost, in_flight = _edges(
        tallies, tally.edges.get(sender, []), receiver, offset_ns, slowest.get(direction.pair, 0.0)
    )
    lost = tally.alone[sender] + counts.extra[sender] + edge_lost
    source, destination, src, dst = _endpoints(direction.key)
    return FlowPath(
        protocol="tcp" if tally.tcp else "udp",
        source=source,
        destination=destination,
        source_name=names.get(src),
        destination_name=names.get(dst),
        from_node=tallies.nodes[sender],
        to_node=tallies.nodes[receiver],
        sent=counts.matched + lost + in_flight,
        reached=counts.matched,
        lost_between=lost,
        in_flight=in_flight,
        reached_again=counts.reached_again,
        unanswered=_unanswered(tallies, direction, receiver, offset_ns),
        duplicated=counts.extra[receiver],
        unseen_leaving=tally.alone[receiver] + len(tally.edges.get(receiver, [])),
        delay=delay,
    )


def _unanswered(tallies: Tallies, direction: _Direction, receiver: int, offset_ns: float) -> int:
    """DNS queries that reached the receiver a matching window or more before its capture ended, and
    were not answered."""
    span = tallies.span(receiver)
    if span is None:
        return 0
    cutoff = span[1] - tallies.horizon_ns
    return sum(
        1
        for ts, pair in direction.tally.queries.values()
        if pair is direction.counts and ts + offset_ns < cutoff
    )


def analyze_paths(
    nodes: Sequence[tuple[str, Iterable[Record]]],
    *,
    names: Mapping[str, str] | None = None,
    owners: Mapping[str, str] | None = None,
    spans: Sequence[tuple[int, int] | None] | None = None,
    **matching: int,
) -> PathSummary:
    """Match every node's records (``(node, records in time order)``) and conclude, in one pass."""
    return summarize_paths(match(nodes, spans=spans, **matching), names=names, owners=owners)


def time_of(ns: int) -> datetime:
    """A packet time as UTC."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)
