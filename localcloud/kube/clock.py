"""Wall-clock time in the API's RFC 3339 form."""

from __future__ import annotations

import datetime


def rfc3339(epoch: float) -> str:
    """Seconds since the epoch as ``2026-01-02T03:04:05Z`` (the API's second precision)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """``2026-01-02T03:04:05Z`` as seconds since the epoch."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
