"""The recorder's ring: files age out past the ring length; the oldest go first when the budget needs room.

Only closed files are evicted, never the one being uploaded; the age limit spares files an open window still
needs, the byte budget spares nothing (it is never exceeded, as for a capture's spool). A file a window
needs is counted (bytes, packets) before it goes, so the window reports what it lost. What windows need is
read under the keeper's lock, and windows take files in under it, so no file is taken in as it goes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools import Logger

from eks_capture_agent.budget import SpoolFile, files_to_drop, open_file_headroom
from eks_capture_agent.pcapscan import packets_in
from eks_capture_agent.periodic import PeriodicCheck
from eks_capture_agent.spool import CAPTURE_RECORD, COMPLETION_MARKER, PcapName, Spool, closed_files


@dataclass
class Evictions:
    """What the ring has let go of: counts by reason, and the peak spool usage seen."""

    by_reason: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    peak_spool_bytes: int = 0


@dataclass(frozen=True)
class EvictedFile:
    """A file an open window needed, as it was when the window lost it (the ring let it go, or the recorder
    stopped first)."""

    bytes: int
    packets: int | None


def counted(path: Path) -> EvictedFile | None:
    """What a file holds, counted before it is lost (None when it is gone already)."""
    try:
        return EvictedFile(path.stat().st_size, packets_in(path))
    except FileNotFoundError:
        return None


class RingKeeper(PeriodicCheck):
    """Evicts the oldest closed files past the ring length or over the budget (never the one in flight).

    ``protected`` (the files open windows need) is called with ``lock`` held."""

    def __init__(
        self,
        spool: Spool,
        ring_seconds: float,
        budget_bytes: int,
        protected: Callable[[], set[str]],
        logger: Logger,
    ) -> None:
        self.spool = spool
        self.ring_seconds = ring_seconds
        self.budget_bytes = budget_bytes
        self.lock = threading.Lock()
        self.in_flight: PcapName | None = None
        self.evictions = Evictions()
        #: Files open windows needed, counted as they were evicted; kept while a window needs them.
        self.evicted_needed: dict[str, EvictedFile] = {}
        self._protected = protected
        super().__init__("ring-keeper", logger)

    def enforce(self) -> None:
        """One check: age out old files, then drop the oldest while usage plus headroom passes the budget."""
        usage = self.spool.usage_bytes()
        self.evictions.peak_spool_bytes = max(self.evictions.peak_spool_bytes, usage)
        present = self.spool.pcap_names()
        closed = closed_files(present, self.spool.path(COMPLETION_MARKER).exists())
        candidates: list[tuple[SpoolFile, float]] = []
        for name in closed:
            try:
                stat = self.spool.path(name.filename).stat()
            except FileNotFoundError:
                continue
            candidates.append((SpoolFile(name, stat.st_blocks * 512), stat.st_mtime))
        oldest_kept = time.time() - self.ring_seconds
        with self.lock:
            protected = self._protected()
            for spool_file, mtime in candidates:
                if mtime < oldest_kept and spool_file.name.filename not in protected:
                    usage -= self._evict(spool_file, "ring")
            headroom = self._headroom(present[-1]) if len(present) > len(closed) else 0
            left = [c for c, _ in candidates if self.spool.path(c.name.filename).exists()]
            for victim in files_to_drop(left, usage, self.budget_bytes, self.in_flight, headroom):
                self._evict(victim, "budget", needed=victim.name.filename in protected)

    def _headroom(self, open_file: PcapName) -> int:
        settings = (self.spool.read_json(CAPTURE_RECORD) or {}).get("settings")
        if not settings:
            return 0
        try:
            open_bytes = self.spool.path(open_file.filename).stat().st_blocks * 512
        except FileNotFoundError:
            open_bytes = 0
        rotate_bytes = int(settings["rotate_megabytes"]) * 1_000_000
        return open_file_headroom(rotate_bytes, int(settings["snaplen"]), open_bytes)

    def forget_unneeded(self, needed: set[str]) -> None:
        """Let go of the counts of evicted files no open window needs any more."""
        with self.lock:
            for name in set(self.evicted_needed) - needed:
                del self.evicted_needed[name]

    def _evict(self, victim: SpoolFile, reason: str, needed: bool = False) -> int:
        if victim.name == self.in_flight:
            return 0
        path = self.spool.path(victim.name.filename)
        held = counted(path) if needed else None
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        if held is not None:
            self.evicted_needed[victim.name.filename] = held
        self.evictions.by_reason[reason] = self.evictions.by_reason.get(reason, 0) + 1
        self.evictions.bytes += victim.bytes
        return victim.bytes
