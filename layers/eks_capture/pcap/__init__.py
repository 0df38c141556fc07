"""Capture analysis: stream a pcap/pcapng (plain, gzip, zstd) and summarise what went wrong on the wire.

The names below load on first use: ``eks-capture merge`` reads captures with ``reader`` alone and
need not import the summaries' pydantic models (~0.1 s of CPU at start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "CaptureReader": "reader",
    "CaptureSummary": "models",
    "DnsSummary": "models",
    "Finding": "models",
    "IcmpSummary": "models",
    "Talker": "models",
    "TcpSummary": "models",
    "analyze": "summaries",
    "analyze_file": "summaries",
    "summarize": "summaries",
}

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


def __getattr__(name: str) -> Any:
    """A name of ``__all__`` from its module, imported now; a submodule or unknown name as usual."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
