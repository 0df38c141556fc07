"""Times as the product writes and reads them: ISO 8601 in UTC with a ``Z``, one way everywhere.

Manifests, the index's sort keys, the recorder's window requests and the stored summaries all spell a
moment the same way, so one module's output is another's input and strings sort as the times do.
"""

from __future__ import annotations

from datetime import UTC, datetime

_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso_utc(moment: datetime, *, micros: bool = False) -> str:
    """``2026-11-25T03:12:00Z``; with ``micros`` ``2026-11-25T03:12:00.000000Z`` (sorts as it reads)."""
    return moment.astimezone(UTC).strftime(_MICROSECONDS if micros else _SECONDS)


def parse_iso(value: str | None) -> datetime | None:
    """An ISO 8601 time as Kubernetes and this product write it (``Z`` or an offset); None for none."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
