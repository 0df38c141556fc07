"""Capture analysis: stream a pcap/pcapng (plain, gzip, zstd) and summarise what went wrong on the wire."""

from eks_capture.pcap.models import (
    CaptureSummary,
    DnsSummary,
    Finding,
    IcmpSummary,
    Talker,
    TcpSummary,
)
from eks_capture.pcap.reader import CaptureReader
from eks_capture.pcap.summaries import analyze, analyze_file, summarize

__all__ = [
    "CaptureReader",
    "CaptureSummary",
    "DnsSummary",
    "Finding",
    "IcmpSummary",
    "Talker",
    "TcpSummary",
    "analyze",
    "analyze_file",
    "summarize",
]
