"""One spelling of time everywhere the agent writes it: ISO 8601 UTC with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(epoch_seconds: float) -> str:
    """Epoch seconds as ``2026-11-25T12:44:20.608551Z`` (microseconds, UTC)."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compact_utc(epoch_seconds: float) -> str:
    """Epoch seconds as ``20261125T124420Z``, the sortable stamp of file names and S3 keys."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y%m%dT%H%M%SZ")
