"""The public entry point: a capture stream in, a ``CaptureSummary`` out."""

from __future__ import annotations

import heapq
import os
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import chain
from typing import BinaryIO

from eks_capture.pcap import linktypes
from eks_capture.pcap.analysis import Scan, scan
from eks_capture.pcap.compression import Readable
from eks_capture.pcap.findings import Namer, address, dns_findings, icmp_findings, rank, tcp_findings
from eks_capture.pcap.models import (
    CaptureSummary,
    DnsSummary,
    Finding,
    IcmpSummary,
    Talker,
    TcpSummary,
)
from eks_capture.pcap.reader import CaptureReader

#: What a decoder bug on hostile bytes could raise; it ends the read as partial instead of escaping.
UNDECODABLE = (IndexError, ValueError, struct.error, OverflowError)
TOP_TALKERS = 10
MAX_FINDINGS = 20


def _time(ns: int | None) -> datetime | None:
    """A packet time as UTC; None when unknown or beyond what a datetime holds (a corrupt pcapng clock)."""
    if ns is None:
        return None
    try:
        return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _talkers(result: Scan, names: Namer, top: int) -> list[Talker]:
    """The ``top`` addresses by bytes sent and received, once the TCP analyzer is closed."""
    totals: dict[bytes, list[int]] = {}
    for key, (size, packets) in chain(result.pairs.items(), result.tcp.pairs.items()):
        pair = key if isinstance(key, bytes) else key[0].to_bytes(4, "big") + key[1].to_bytes(4, "big")
        half = len(pair) // 2
        for end in (pair[:half], pair[half:]):
            entry = totals.get(end)
            if entry is None:
                totals[end] = [size, packets]
            else:
                entry[0] += size
                entry[1] += packets
    best = heapq.nlargest(top, totals.items(), key=lambda item: (item[1][0], item[0]))
    return [
        Talker(address=address(raw), name=names.name(address(raw)), bytes=size, packets=packets)
        for raw, (size, packets) in best
    ]


def summarize(
    reader: CaptureReader,
    result: Scan,
    *,
    context: Mapping[str, str] | None = None,
    top_talkers: int = TOP_TALKERS,
    max_findings: int = MAX_FINDINGS,
) -> CaptureSummary:
    """Turn a finished scan into the stored summary; ``context`` maps IP -> name for the text."""
    names = Namer(context)
    tcp = result.tcp.close()
    dns = result.dns.close()
    findings: list[Finding] = [
        *tcp_findings(result, names),
        *dns_findings(result, names),
        *icmp_findings(result, names),
    ]
    if reader.partial:
        findings.append(
            Finding(
                severity="warning",
                kind="capture.partial",
                message=f"capture file incomplete after {result.packets} packets: {reader.reason}",
                count=1,
                subject="file",
            )
        )
    return CaptureSummary(
        format=reader.format,
        compression=reader.compression,
        packets=result.packets,
        bytes=result.octets,
        first_ts=_time(result.first_ts),
        last_ts=_time(result.last_ts),
        link_types=[linktypes.name_of(link) for link in reader.link_types],
        partial=reader.partial,
        partial_reason=reader.reason,
        tcp=TcpSummary(
            connections=tcp.connections,
            retransmissions=tcp.retransmissions,
            fast_retransmissions=tcp.fast_retransmissions,
            spurious_retransmissions=tcp.spurious_retransmissions,
            out_of_order=tcp.out_of_order,
            duplicate_acks=tcp.duplicate_acks,
            resets=tcp.resets,
            unanswered_syns=tcp.unanswered_syns,
            refused=tcp.refused,
            zero_windows=tcp.zero_windows,
        ),
        dns=DnsSummary(
            queries=dns.queries,
            responses=dns.responses,
            nxdomain=dns.nxdomain,
            servfail=dns.servfail,
            unanswered=dns.unanswered,
        ),
        icmp=IcmpSummary(
            unreachable=result.icmp_unreachable,
            frag_needed=result.icmp_frag_needed,
            v6_unreachable=result.icmp6_unreachable,
            v6_packet_too_big=result.icmp6_too_big,
        ),
        top_talkers=_talkers(result, names, top_talkers),
        findings=rank(findings, max_findings),
    )


def analyze(
    source: BinaryIO | Readable,
    *,
    context: Mapping[str, str] | None = None,
    top_talkers: int = TOP_TALKERS,
    max_findings: int = MAX_FINDINGS,
) -> CaptureSummary:
    """Analyse a pcap/pcapng stream (plain, gzip or zstd; e.g. an S3 ``StreamingBody``) in one pass.

    Never raises for bad capture data: a truncated or corrupt file gives ``partial=True`` and the reason.
    """
    reader = CaptureReader(source)
    result = Scan()
    try:
        scan(reader, result)
    except UNDECODABLE as error:
        reader.stop(f"undecodable data after {result.packets} packets: {error!r}")
    return summarize(reader, result, context=context, top_talkers=top_talkers, max_findings=max_findings)


def analyze_file(
    path: str | os.PathLike[str],
    *,
    context: Mapping[str, str] | None = None,
    top_talkers: int = TOP_TALKERS,
    max_findings: int = MAX_FINDINGS,
) -> CaptureSummary:
    """``analyze`` on a local file."""
    with open(path, "rb") as stream:
        return analyze(stream, context=context, top_talkers=top_talkers, max_findings=max_findings)
