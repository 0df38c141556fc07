"""The upload role: ship each closed pcap to S3 as soon as tcpdump lets go of it, then the manifest.

One file at a time, oldest first: scan it once seen closed (packets, first/last packet), stream it
compressed to S3, confirm the object, then delete the local copy. A failed attempt is retried with backoff
while the budget keeper (its own thread) stops the spool from overflowing in the meantime. SIGTERM starts the
grace period: the role keeps going until the capture's marker has arrived and everything is up, or only
the last questions' and the manifest's reserves are left, and always tries to leave a manifest.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aws_lambda_powertools import Logger
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture_agent.backoff import retry_delay
from eks_capture_agent.compression import Codec, Compression
from eks_capture_agent.identity import Identity
from eks_capture_agent.keeper import BudgetKeeper
from eks_capture_agent.ledger import DroppedFile, Ledger, UploadedFile, recovered_upload
from eks_capture_agent.manifest import MANIFEST, UploadTarget, build_manifest
from eks_capture_agent.objects import pcap_key, pcap_metadata
from eks_capture_agent.pcapscan import NotPcapError, PcapSummary, packets_in, scan_pcap
from eks_capture_agent.s3client import S3Client, UploadNotConfirmedError, find_object, put_bytes, put_file
from eks_capture_agent.spool import (
    CAPTURE_RECORD,
    COMPLETION_MARKER,
    SNAPSHOTS,
    PcapName,
    Spool,
    closed_files,
    parse_pcap_name,
)
from eks_capture_agent.timestamps import iso_utc

EXIT_OK = 0
EXIT_INCOMPLETE = 4
MANIFEST_RESERVE_SECONDS = 3.0
#: Before the manifest's reserve: the last questions to S3 for what an attempt may have left there.
LAST_QUESTIONS_SECONDS = 2.0
MANIFEST_ATTEMPTS = 8
UPLOAD_ERRORS = (BotoCoreError, ClientError, Boto3Error, UploadNotConfirmedError, OSError)


@dataclass(frozen=True)
class UploadRequest:
    """Everything the upload role was asked to do."""

    spool: Path
    target: UploadTarget
    grace_seconds: float
    poll_seconds: float = 0.5
    marker_wait_seconds: float = 60.0


class Uploader:
    """The role's loop and state; ``run()`` returns the process exit code."""

    def __init__(self, request: UploadRequest, identity: Identity, client: S3Client, logger: Logger) -> None:
        self.request = request
        self.identity = identity
        self.client = client
        self.logger = logger
        self.spool = Spool(request.spool)
        self.compression = Compression(Codec(request.target.codec), request.target.level)
        self.ledger = Ledger.load(self.spool)
        self.keeper = BudgetKeeper(self.spool, request.target.budget_bytes, self.ledger, logger)
        self._wake = threading.Event()
        self._terminate_at: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._started = time.monotonic()
        self._signal: str | None = None
        self._noted = {"signal": False, "overdue": False}
        #: Each closed pcap scanned once, when first seen closed (None: no pcap), so counting what is left
        #: at the stop reads at most the file still open.
        self._summaries: dict[str, PcapSummary | None] = {}

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.keeper.start()
        try:
            self._upload_until_done()
        finally:
            self.keeper.stop()
        return self._finish()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._terminate_at is None:
            self._terminate_at = time.monotonic() + self.request.grace_seconds
            self._signal = signal.Signals(signum).name
        self._wake.set()

    def _out_of_time(self, reserve: float = MANIFEST_RESERVE_SECONDS) -> bool:
        return self._terminate_at is not None and time.monotonic() >= self._terminate_at - reserve

    def _upload_until_done(self) -> None:
        while True:
            if self._signal and not self._noted["signal"]:
                self._noted["signal"] = True
                self.logger.info(
                    "stop requested; uploading what remains within the grace period",
                    extra={"signal": self._signal, "grace_seconds": self.request.grace_seconds},
                )
            marker = self.spool.read_json(COMPLETION_MARKER)
            capture_over = marker is not None or self._marker_overdue()
            progressed = self._step(capture_over)
            if capture_over and not self._left_in_spool() and not self._unsettled():
                return
            if self._out_of_time(MANIFEST_RESERVE_SECONDS + LAST_QUESTIONS_SECONDS):
                self.logger.error("grace period over with files left", extra={"left": self._left_in_spool()})
                return
            if not progressed:
                self._wake.wait(self.request.poll_seconds)
                self._wake.clear()

    def _marker_overdue(self) -> bool:
        """The capture role is gone without a marker: it never started, or it is long past its planned end."""
        record = self.spool.read_json(CAPTURE_RECORD)
        if record is None:
            overdue = time.monotonic() - self._started > self.request.marker_wait_seconds
            reason = "the capture role never wrote capture.json"
        else:
            expected_end = datetime.fromisoformat(record["expected_end"]).timestamp()
            overdue = time.time() > expected_end + self.request.marker_wait_seconds
            reason = "no completion marker long after the capture's planned end; taking all files"
        if overdue and not self._noted["overdue"]:
            self._noted["overdue"] = True
            self.logger.warning(reason, extra={"marker_wait_seconds": self.request.marker_wait_seconds})
        return overdue

    def _left_in_spool(self) -> list[str]:
        pcaps = [name.filename for name in self.spool.pcap_names()]
        return pcaps + [name for name in SNAPSHOTS if self.spool.path(name).exists()]

    def _step(self, capture_over: bool) -> bool:
        """One unit of work (a pcap, else a snapshot); whether anything was done."""
        present = self.spool.pcap_names()
        closed = closed_files(present, capture_over)
        with self.keeper.lock:
            self.ledger.number(closed)  # not the open file: the capture role may yet take it away empty
        for pcap in closed:
            try:
                self._summary(pcap)
            except FileNotFoundError:
                continue
        unsettled = self._unsettled()
        pending = closed or unsettled or any(self.spool.path(name).exists() for name in SNAPSHOTS)
        if pending and time.monotonic() < self._retry_at:
            return False
        if unsettled:
            return self._settle(unsettled[0])
        if closed:
            return self._upload_pcap(closed[0])
        for name in SNAPSHOTS:
            if self.spool.path(name).exists():
                return self._upload_document(name)
        return False

    def _failed(self, what: str, error: Exception) -> bool:
        self._failures += 1
        delay = retry_delay(self._failures)
        self._retry_at = time.monotonic() + delay
        with self.keeper.lock:
            self.ledger.note_error(what, f"{type(error).__name__}: {error}", iso_utc(time.time()))
            self.ledger.save(self.spool)
        self.logger.warning(
            "upload failed; will retry",
            extra={"what": what, "error": str(error), "failures": self._failures, "retry_in_seconds": delay},
        )
        return False

    def _upload_pcap(self, name: PcapName) -> bool:
        path = self.spool.path(name.filename)
        with self.keeper.lock:
            if not path.exists():
                return True
            self.keeper.in_flight = name
        try:
            return self._ship_pcap(name, path)
        except UPLOAD_ERRORS as error:
            return self._failed(name.filename, error)
        finally:
            with self.keeper.lock:
                self.keeper.in_flight = None

    def _summary(self, name: PcapName) -> PcapSummary | None:
        """The closed file's packets and first/last packet, scanned once (FileNotFoundError if it is gone)."""
        if name.filename not in self._summaries:
            try:
                self._summaries[name.filename] = scan_pcap(self.spool.path(name.filename))
            except NotPcapError as error:
                self._summaries[name.filename] = None
                with self.keeper.lock:
                    self.ledger.note_error(name.filename, str(error), iso_utc(time.time()))
        return self._summaries[name.filename]

    def _ship_pcap(self, name: PcapName, path: Path) -> bool:
        summary = self._summary(name)
        seq = self.ledger.seqs[name.filename]
        start = summary.first_packet if summary and summary.first_packet is not None else name.period_start
        key = pcap_key(self.request.target.prefix, start, seq, self.compression.suffix)
        metadata = pcap_metadata(self.identity, self._capture_filter(), seq, summary)
        with self.keeper.lock:  # from here the object may reach S3 even if the attempt fails
            self.ledger.attempted[name.filename] = key
        stored = put_file(self.client, self.request.target.bucket, key, path, self.compression, metadata)
        self._uploaded(name, key, stored.stored_bytes, metadata)
        return True

    def _uploaded(self, name: PcapName, key: str, stored_bytes: int, metadata: dict[str, str]) -> None:
        """S3 holds the file's object: the local copy goes, the ledger counts it uploaded."""
        path = self.spool.path(name.filename)
        size = path.stat().st_size
        path.unlink()
        summary = self._summaries.pop(name.filename, None)
        uploaded = UploadedFile(
            name=name.filename,
            key=key,
            seq=self.ledger.seqs[name.filename],
            bytes=size,
            stored_bytes=stored_bytes,
            packets=summary.packets if summary else None,
            first_packet=metadata.get("first-packet"),
            last_packet=metadata.get("last-packet"),
            truncated_bytes=summary.trailing_bytes if summary else 0,
            uploaded_at=iso_utc(time.time()),
        )
        with self.keeper.lock:
            self.ledger.attempted.pop(name.filename, None)
            self.ledger.uploaded.append(uploaded)
            self.ledger.save(self.spool)
        self._failures = 0
        self.logger.info(
            "uploaded",
            extra={
                "file": name.filename,
                "key": key,
                "bytes": size,
                "stored_bytes": stored_bytes,
                "packets": uploaded.packets,
            },
        )

    def _unsettled(self) -> list[DroppedFile]:
        with self.keeper.lock:
            return self.ledger.unsettled()

    def _settle(self, dropped: DroppedFile) -> bool:
        """A file the keeper dropped between failed upload attempts may be in S3 after all (the PUT landed,
        its answer was cut): ask S3 once it answers, so the file counts once, as S3 has it."""
        assert dropped.key is not None
        try:
            found = find_object(self.client, self.request.target.bucket, dropped.key)
        except UPLOAD_ERRORS as error:
            return self._failed(dropped.name, error)
        stored: UploadedFile | None = None
        if found is not None:
            stored = recovered_upload(dropped, found.metadata, found.stored_bytes, iso_utc(time.time()))
        with self.keeper.lock:
            self.ledger.settle(dropped, stored)
            self.ledger.save(self.spool)
        self._failures = 0
        self.logger.info(
            "a dropped file's earlier upload attempt reached S3: counted as uploaded"
            if stored
            else "a dropped file's earlier upload attempt did not reach S3: counted as dropped",
            extra={"file": dropped.name, "key": dropped.key},
        )
        return True

    def _capture_filter(self) -> str:
        record = self.spool.read_json(CAPTURE_RECORD) or {}
        settings: dict[str, Any] = record.get("settings") or {}
        return str(settings.get("filter", ""))

    def _upload_document(self, name: str) -> bool:
        path = self.spool.path(name)
        key = f"{self.request.target.prefix}{name}"
        try:
            put_bytes(self.client, self.request.target.bucket, key, path.read_bytes(), "application/json")
        except UPLOAD_ERRORS as error:
            return self._failed(name, error)
        path.unlink()
        with self.keeper.lock:
            self.ledger.documents.append(key)
            self.ledger.save(self.spool)
        self._failures = 0
        self.logger.info("uploaded", extra={"file": name, "key": key})
        return True

    def _packets_in_pcaps(self, names: list[str]) -> int:
        """Packets in the pcaps among ``names`` (whole records; a file gone or no pcap counts none): a closed
        file's from its scan, the open file's read now."""
        packets = 0
        for name in names:
            if parse_pcap_name(name) is None:
                continue
            if name in self._summaries:
                summary = self._summaries[name]
                packets += summary.packets if summary else 0
                continue
            try:
                packets += packets_in(self.spool.path(name)) or 0
            except FileNotFoundError:
                continue
        return packets

    def _settle_the_rest(self) -> None:
        """Ask S3 once more for each dropped file it may hold, whatever the backoff says: the loop can end
        (grace over) with S3 answering again and its retry not yet due. Stops at the first failure (S3
        still away) or when the last questions' time is up (the manifest's reserve is never spent), leaving
        the rest for the manifest to name."""
        for dropped in self._unsettled():
            if self._out_of_time() or not self._settle(dropped):
                return
        for name in self.spool.pcap_names():
            key = self.ledger.attempted.get(name.filename)
            if key is not None and (self._out_of_time() or not self._confirm_attempt(name, key)):
                return

    def _confirm_attempt(self, name: PcapName, key: str) -> bool:
        """A file still in the spool whose upload attempt failed may be in S3 after all (the PUT landed, its
        answer was cut, and the retry was not due before the grace period ended): an object with the very
        metadata this file's upload sends (its seq, its packets and their times) makes it uploaded, so the
        manifest does not count its packets as left too. Whether S3 answered."""
        try:
            found = find_object(self.client, self.request.target.bucket, key)
        except UPLOAD_ERRORS as error:
            return self._failed(name.filename, error)
        seq = self.ledger.seqs[name.filename]
        metadata = pcap_metadata(self.identity, self._capture_filter(), seq, self._summary(name))
        if found is None or found.metadata != metadata:
            self.logger.info(
                "a left file's failed upload attempt did not reach S3: counted as not uploaded",
                extra={"file": name.filename, "key": key, "found": found is not None},
            )
            return True
        self._uploaded(name, key, found.stored_bytes, metadata)
        return True

    def _finish(self) -> int:
        self._settle_the_rest()
        # What is left is counted as dropped in the manifest but not in the ledger: a restarted uploader
        # still ships it, and its manifest then counts it as uploaded.
        left = self._left_in_spool()
        manifest = build_manifest(
            self.identity,
            self.request.target,
            self.spool.read_json(CAPTURE_RECORD),
            self.spool.read_json(COMPLETION_MARKER),
            self.ledger,
            left,
            self._packets_in_pcaps(left),
            iso_utc(time.time()),
        )
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        key = f"{self.request.target.prefix}{MANIFEST}"
        for attempt in range(1, MANIFEST_ATTEMPTS + 1):
            try:
                put_bytes(self.client, self.request.target.bucket, key, body, "application/json")
                break
            except UPLOAD_ERRORS as error:
                self.logger.warning("manifest upload failed", extra={"error": str(error), "attempt": attempt})
                if self._out_of_time(reserve=0.0) or attempt == MANIFEST_ATTEMPTS:
                    self.logger.error("manifest not uploaded", extra={"manifest": manifest})
                    return EXIT_INCOMPLETE
                time.sleep(retry_delay(attempt))
        summary = {
            "status": manifest["status"],
            "totals": manifest["totals"],
            "dropped": manifest["dropped"]["files"],
            "incomplete_reasons": manifest["incomplete_reasons"],
        }
        if manifest["status"] != "complete":
            self.logger.error("upload incomplete", extra=summary)
            return EXIT_INCOMPLETE
        self.logger.info("upload complete", extra=summary)
        return EXIT_OK
