"""Capture ids: ``cap-<YYYYmmddTHHMMSSZ>-<8 hex>``, sortable by start time and valid as a label value."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import NewType

CaptureId = NewType("CaptureId", str)

CAPTURE_ID_PATTERN = r"^cap-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
_CAPTURE_ID = re.compile(CAPTURE_ID_PATTERN)
_STAMP = "%Y%m%dT%H%M%SZ"


def _stamp(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("capture time must be timezone-aware")
    return when.astimezone(UTC).strftime(_STAMP)


def capture_id_for_event(event_id: str, when: datetime) -> CaptureId:
    """The capture id of an event: the same event delivered twice gets the same id, and so the same Jobs."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:8]
    return CaptureId(f"cap-{_stamp(when)}-{digest}")


def new_capture_id(when: datetime) -> CaptureId:
    """A fresh random capture id, for starts that have no event id of their own (CLI, tests)."""
    return CaptureId(f"cap-{_stamp(when)}-{secrets.token_hex(4)}")


def is_capture_id(value: str) -> bool:
    """Whether ``value`` has the capture id format."""
    return bool(_CAPTURE_ID.match(value))


def parse_capture_id(value: str) -> CaptureId:
    """``value`` as a CaptureId; ValueError naming the expected format otherwise."""
    if not is_capture_id(value):
        raise ValueError("must look like cap-YYYYmmddTHHMMSSZ-<8 hex digits>")
    return CaptureId(value)


def capture_started_at(capture_id: CaptureId) -> datetime:
    """The UTC start time a capture id carries."""
    return datetime.strptime(capture_id[4:20], _STAMP).replace(tzinfo=UTC)
