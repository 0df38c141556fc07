"""The spool's budget, enforced on its own thread so a slow or failing upload never lets it overflow."""

from __future__ import annotations

import threading
import time

from aws_lambda_powertools import Logger

from eks_capture_agent.budget import DOCUMENT_SLACK_BYTES, SpoolFile, files_to_drop, open_file_headroom
from eks_capture_agent.ledger import DroppedFile, Ledger
from eks_capture_agent.pcapscan import packets_in
from eks_capture_agent.periodic import PeriodicCheck
from eks_capture_agent.spool import CAPTURE_RECORD, COMPLETION_MARKER, PcapName, Spool, closed_files
from eks_capture_agent.timestamps import iso_utc


class BudgetKeeper(PeriodicCheck):
    """Samples spool usage and deletes the oldest closed, unuploaded files when usage exceeds the budget.

    ``lock`` is shared with the uploader: it guards the ledger and ``in_flight`` (the file being
    uploaded, which is never dropped).
    """

    def __init__(self, spool: Spool, budget_bytes: int, ledger: Ledger, logger: Logger) -> None:
        self.spool = spool
        self.budget_bytes = budget_bytes
        self.ledger = ledger
        self.lock = threading.Lock()
        self.in_flight: PcapName | None = None
        super().__init__("budget-keeper", logger)
        self._rotation: tuple[int, int] | None = None

    def enforce(self) -> None:
        """One check: sample usage, drop what must go."""
        measured = self.spool.usage()
        usage = measured.total
        with self.lock:
            self.ledger.peak_spool_bytes = max(self.ledger.peak_spool_bytes, usage)
        # Files first, then the marker: a capture removes a stale marker before its first file, so a file
        # listed here was closed if the marker is there now.
        present = self.spool.pcap_names()
        capture_done = self.spool.path(COMPLETION_MARKER).exists()
        closed = closed_files(present, capture_done)
        headroom = 0 if capture_done or not present else self._headroom(present[-1], measured.documents)
        if usage + headroom <= self.budget_bytes:
            return
        candidates = []
        for name in closed:
            try:
                candidates.append(SpoolFile(name, self.spool.path(name.filename).stat().st_blocks * 512))
            except FileNotFoundError:
                continue
        with self.lock:
            # Only files seen closed and still there: the file being written, or one the capture role
            # took away empty (no room by its stop, rotation.RotatingWriter), takes no seq.
            self.ledger.number([candidate.name for candidate in candidates])
            for victim in files_to_drop(candidates, usage, self.budget_bytes, self.in_flight, headroom):
                self._drop(victim)
            self.ledger.save(self.spool)

    def _headroom(self, open_file: PcapName, documents_bytes: int) -> int:
        """Room the file being written and the next one may still take (from the capture's settings), and
        the room the capture role waits for before it starts the next file (rotation.RotatingWriter)."""
        if self._rotation is None:
            record = self.spool.read_json(CAPTURE_RECORD) or {}
            settings = record.get("settings")
            if not settings:
                return 0
            self._rotation = (int(settings["rotate_megabytes"]) * 1_000_000, int(settings["snaplen"]))
        rotate_bytes, snaplen = self._rotation
        try:
            open_bytes = self.spool.path(open_file.filename).stat().st_blocks * 512
        except FileNotFoundError:
            open_bytes = 0
        growth = open_file_headroom(rotate_bytes, snaplen, open_bytes)
        return growth + documents_bytes + DOCUMENT_SLACK_BYTES if growth else 0

    def _drop(self, victim: SpoolFile) -> None:
        path = self.spool.path(victim.name.filename)
        try:
            size = path.stat().st_size
            packets = packets_in(path)
            path.unlink()
        except FileNotFoundError:
            return
        seq = self.ledger.seqs[victim.name.filename]
        self.ledger.dropped.append(
            DroppedFile(
                name=victim.name.filename,
                seq=seq,
                bytes=size,
                dropped_at=iso_utc(time.time()),
                reason="budget",
                packets=packets,
                key=self.ledger.attempted.pop(victim.name.filename, None),
            )
        )
        self._logger.warning(
            "dropped an unuploaded file to keep the spool budget",
            extra={
                "file": victim.name.filename,
                "seq": seq,
                "bytes": size,
                "packets": packets,
                "budget_bytes": self.budget_bytes,
            },
        )
