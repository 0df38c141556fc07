"""Window requests, which ring files answer them, and what a window has got (pure decisions of the recorder).

The trigger annotates the recorder pod with ``eks-capture.io/window-request`` (JSON: ``capture_id``,
``from``, ``to``, ``trigger_at`` as ISO 8601 UTC, and ``prefix``); the kubelet renders the pod's
annotations into a downward-API file as ``key="value"`` lines, values quoted as Go's %q does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from eks_capture_agent.identity import CAPTURE_ID, SettingError
from eks_capture_agent.ledger import DroppedFile, Settling, UploadedFile
from eks_capture_agent.ring import EvictedFile
from eks_capture_agent.spool import PcapName

WINDOW_REQUEST_ANNOTATION = "eks-capture.io/window-request"
_LINE = re.compile(r'^(?P<key>[^=]+)=(?P<value>".*")$')


@dataclass(frozen=True)
class WindowRequest:
    """Upload what the ring holds of [from, to] under ``prefix`` for capture ``capture_id``."""

    capture_id: str
    start: float
    end: float
    trigger_at: float
    prefix: str


@dataclass(frozen=True)
class RingFile:
    """A file of the ring with the span it covers: its period start to its last write."""

    name: PcapName
    start: float
    end: float
    closed: bool


@dataclass(frozen=True)
class Attempt:
    """An upload started and not confirmed: the key it writes, and what the file held."""

    key: str
    bytes: int
    packets: int


@dataclass
class Window(Settling):
    """One request being served: the files it wants, those it got, those the ring lost first.

    A failed attempt may have reached S3 (the PUT landed, its answer was cut), so each file keeps the
    sequence number, hence the key, of its first attempt, and a file the ring lets go of after an attempt
    is dropped with that key until S3 says whether it holds it: every file counts once, as S3 has it.
    """

    request: WindowRequest
    received_at: float
    wanted: set[str] = field(default_factory=set)
    uploaded: dict[str, UploadedFile] = field(default_factory=dict)
    dropped: list[DroppedFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    attempted: dict[str, Attempt] = field(default_factory=dict)

    def seq_of(self, filename: str) -> int:
        """The file's sequence number in the window, handed out at its first attempt and never changed."""
        return self.seqs.setdefault(filename, len(self.seqs))

    def lost(
        self, filename: str, at: str, evicted: EvictedFile | None, reason: str = "evicted before upload"
    ) -> None:
        """A wanted file the ring let go of (or the recorder stopped with) before its upload was confirmed:
        dropped, with its attempt's key (S3 may hold it) when one was made, and what it held (as the
        attempt or the ring counted it). It keeps the seq it was given, if any (an attempt the spool would
        not keep is numbered), so every seq handed out is a file in the manifest."""
        if filename in self.uploaded or any(item.name == filename for item in self.dropped):
            return
        attempt = self.attempted.pop(filename, None)
        if attempt is None:
            size, packets = (evicted.bytes, evicted.packets) if evicted else (0, None)
            self.dropped.append(DroppedFile(filename, self.seqs.get(filename, -1), size, at, reason, packets))
            return
        seq = self.seqs[filename]
        self.dropped.append(
            DroppedFile(filename, seq, attempt.bytes, at, reason, attempt.packets, attempt.key)
        )

    def count_uploaded(self, stored: UploadedFile) -> None:
        self.uploaded[stored.name] = stored


def parse_annotations(text: str) -> dict[str, str]:
    """The ``key="value"`` lines of a downward-API annotations file; lines of any other form are skipped."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        try:
            value = json.loads(match["value"])
        except json.JSONDecodeError:
            continue
        if isinstance(value, str):
            found[match["key"]] = value
    return found


def _epoch(document: dict[str, object], field: str) -> float:
    value = document.get(field)
    if not isinstance(value, str):
        raise SettingError(f"window-request.{field}", "must be an ISO 8601 UTC time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as error:
        raise SettingError(f"window-request.{field}", f"{value!r} is not an ISO 8601 time") from error


def parse_window_request(text: str, cluster: str, node: str) -> WindowRequest:
    """The request annotation's JSON, checked field by field; the prefix must be this node's."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingError("window-request", f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise SettingError("window-request", "must be a JSON object")
    capture_id = document.get("capture_id")
    if not isinstance(capture_id, str) or not CAPTURE_ID.match(capture_id):
        raise SettingError("window-request.capture_id", f"{capture_id!r} is not a capture id")
    start, end = _epoch(document, "from"), _epoch(document, "to")
    if end <= start:
        raise SettingError("window-request.to", "must be later than from")
    trigger_at = _epoch(document, "trigger_at") if "trigger_at" in document else start
    expected = f"captures/{cluster}/{capture_id}/{node}/"
    if document.get("prefix") != expected:
        raise SettingError("window-request.prefix", f"must be {expected!r}")
    return WindowRequest(capture_id, start, end, trigger_at, expected)


def overlapping(files: list[RingFile], request: WindowRequest) -> list[RingFile]:
    """Files whose span meets the window, oldest first."""
    return sorted(
        (item for item in files if item.start <= request.end and item.end >= request.start),
        key=lambda item: item.name,
    )


def window_settled(files: list[RingFile], request: WindowRequest, now: float) -> bool:
    """No file can still add packets: the window has ended and every file meeting it is closed."""
    if now < request.end:
        return False
    return all(item.closed for item in overlapping(files, request))


def reach_verdict(request: WindowRequest, reached_from: float | None) -> str | None:
    """Why the capture starts later than asked (None when the ring held the whole lookback)."""
    asked = request.trigger_at - request.start
    if reached_from is not None and reached_from <= request.start + 1.0:
        return None
    if reached_from is None or reached_from >= request.trigger_at:
        return f"the ring held none of the {_span(asked)} asked before the trigger"
    held = request.trigger_at - reached_from
    return f"the ring held only {_span(held)} of the {_span(asked)} asked before the trigger"


def _span(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} minutes"
    return f"{max(seconds, 0):.0f} s"
