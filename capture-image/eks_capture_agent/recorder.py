"""The recorder: a ring of tcpdump files kept on the node, uploaded only for the windows asked of it.

The ``record`` role is the capture role without an end (until SIGTERM). The ``recorder`` role keeps the
spool a ring -- files older than the ring length, and the oldest files whenever usage plus headroom
would pass the byte budget, are evicted -- and polls the downward-API annotations file: each new window
request uploads every file meeting [from, to] to the capture's prefix (same keys and metadata as any
capture, plus ``pre-trigger``), then a manifest saying how far back the capture reaches. Files stay in
the ring after an upload: the next window may need them too. Open windows are kept in the spool
(recorder_state.py) before each upload and after each confirmation: a restarted recorder serves them on.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aws_lambda_powertools import Logger

from eks_capture_agent.compression import Codec, Compression
from eks_capture_agent.identity import Identity, SettingError
from eks_capture_agent.ledger import DroppedFile, UploadedFile, recovered_upload
from eks_capture_agent.manifest import MANIFEST
from eks_capture_agent.objects import pcap_key, pcap_metadata
from eks_capture_agent.pcapscan import NotPcapError, scan_pcap
from eks_capture_agent.recorder_state import RecorderState
from eks_capture_agent.recorder_windows import (
    WINDOW_REQUEST_ANNOTATION,
    Attempt,
    RingFile,
    Window,
    overlapping,
    parse_annotations,
    parse_window_request,
    reach_verdict,
    window_settled,
)
from eks_capture_agent.ring import RingKeeper, counted
from eks_capture_agent.s3client import S3Client, find_object, put_bytes, put_file
from eks_capture_agent.spool import CAPTURE_RECORD, COMPLETION_MARKER, PcapName, Spool, closed_files
from eks_capture_agent.timestamps import iso_utc
from eks_capture_agent.upload import UPLOAD_ERRORS

RECORD_FOREVER_SECONDS = 10 * 365 * 24 * 3600
RECORDER_CAPTURE_ID = "cap-00000000T000000Z-00000000"  # the ring's own files belong to no capture yet
SCHEMA = 1
EXIT_OK = 0
OPEN_FILE_COPIES = ".cap-*-*.pcap*"  # ".<capture id>-<file>": an open file's whole records, while uploaded


@dataclass(frozen=True)
class RecorderRequest:
    """Everything the recorder role was asked to do."""

    spool: Path
    bucket: str
    request_file: Path
    ring_seconds: float
    budget_bytes: int
    codec: str = "zstd"
    level: int = 1
    poll_seconds: float = 1.0
    settle_seconds: float = 15.0
    grace_seconds: float = 25.0


class Recorder:
    """The recorder role's loop and state; ``run()`` returns the process exit code."""

    def __init__(self, request: RecorderRequest, node: Identity, client: S3Client, logger: Logger) -> None:
        self.request = request
        self.node = node
        self.client = client
        self.logger = logger
        self.spool = Spool(request.spool)
        self.compression = Compression(Codec(request.codec), request.level)
        self.keeper = RingKeeper(
            self.spool, request.ring_seconds, request.budget_bytes, self._protected, logger
        )
        self.state = RecorderState(self.spool, logger)
        self.windows: dict[str, Window] = dict(self.state.open)
        for capture_id in self.windows:
            self.logger.info("window resumed", extra={"capture_id": capture_id})
        for copy in request.spool.glob(OPEN_FILE_COPIES):  # left by a killed run; the budget counts it
            copy.unlink(missing_ok=True)
        self.started_at = time.time()
        self._stop_by: float | None = None
        self._refused: str | None = None
        self._wake = threading.Event()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.keeper.start()
        self.logger.info("recorder running", extra={"ring_seconds": self.request.ring_seconds})
        try:
            while self._stop_by is None or (self.windows and time.monotonic() < self._stop_by):
                self.step()
                self._wake.wait(self.request.poll_seconds)
        finally:
            self.close_windows()
            self.keeper.stop()
        return EXIT_OK

    def close_windows(self) -> None:
        """The recorder stops with windows open: each file whose upload was never confirmed is dropped with
        its attempt's key and S3 is asked once whether it holds it, so the manifest counts it once, as S3
        has it; a wanted file never attempted is dropped as the ring holds it (or held it); the manifest
        says the window was not settled."""
        at = iso_utc(time.time())
        for window in list(self.windows.values()):
            for name in sorted(window.wanted - set(window.uploaded)):
                if name in window.attempted:
                    window.lost(name, at, None, reason="upload not confirmed before the recorder stopped")
                    continue
                with self.keeper.lock:  # the keeper still runs: the file is counted here or as it goes
                    held = self.keeper.evicted_needed.get(name) or counted(self.spool.path(name))
                window.lost(name, at, held, reason="not uploaded before the recorder stopped")
            for dropped in window.unsettled():
                self._settle(window, dropped)
            window.errors.append("the recorder stopped before the window was settled")
            self._finish(window)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self._stop_by is None:
            self._stop_by = time.monotonic() + self.request.grace_seconds
        self._wake.set()

    def _protected(self) -> set[str]:
        """Files an open window still needs: the ring's age limit spares them (the budget does not). The
        keeper asks under its lock, and windows take files in under it (``_serve``)."""
        return {name for window in list(self.windows.values()) for name in window.wanted}

    def step(self) -> None:
        """Take in a new request, upload what the open windows can take now, close the settled ones."""
        self._read_request()
        for window in list(self.windows.values()):
            self._serve(window)
        self.keeper.forget_unneeded(self._protected())
        self.state.save(self.windows)

    def _read_request(self) -> None:
        try:
            text = self.request.request_file.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return
        raw = parse_annotations(text).get(WINDOW_REQUEST_ANNOTATION)
        if raw is None:
            return
        if raw == self._refused:
            return
        try:
            window = parse_window_request(raw, self.node.cluster, self.node.node)
        except SettingError as error:
            self._refused = raw  # said once: the annotation stays until the next request replaces it
            extra = {"field": error.field, "error": error.problem}
            self.logger.error("ignored a window request", extra=extra)
            return
        if window.capture_id in self.state.served or window.capture_id in self.windows:
            return
        self.logger.info(
            "window requested",
            extra={"capture_id": window.capture_id, "from": iso_utc(window.start), "to": iso_utc(window.end)},
        )
        self.windows[window.capture_id] = Window(window, time.time())

    def ring_files(self) -> list[RingFile]:
        """The ring's files with their spans; the newest is open until the record role has stopped."""
        present = self.spool.pcap_names()
        closed = set(closed_files(present, self.spool.path(COMPLETION_MARKER).exists()))
        files = []
        for name in present:
            try:
                mtime = self.spool.path(name.filename).stat().st_mtime
            except FileNotFoundError:
                continue
            files.append(RingFile(name, name.period_start, mtime, name in closed))
        return files

    def _serve(self, window: Window) -> None:
        # under the keeper's lock: a file listed here is spared or counted as it goes (ring.RingKeeper)
        with self.keeper.lock:
            files = self.ring_files()
            meeting = overlapping(files, window.request)
            window.wanted |= {item.name.filename for item in meeting}
        for item in meeting:
            waiting = item.closed and item.name.filename not in window.uploaded
            if waiting and not self._upload(window, item.name):
                return  # the spool would not keep the attempt: the file waits for the next step
        present = {item.name.filename for item in self.ring_files()}
        for name in sorted(window.wanted - set(window.uploaded) - present):
            with self.keeper.lock:
                evicted = self.keeper.evicted_needed.get(name)
            window.lost(name, iso_utc(time.time()), evicted)
        for dropped in window.unsettled():
            self._settle(window, dropped)
        if window.unsettled():
            return  # S3 did not answer: asked again at the next step, the manifest waits for it
        now = time.time()
        if not window_settled(files, window.request, now):
            if now <= window.request.end + self.request.settle_seconds:
                return
            # A quiet interface never makes tcpdump rotate: take what it has written of the open file.
            for item in meeting:
                name = item.name.filename
                if not item.closed and name not in window.uploaded:
                    if not self._upload(window, item.name, still_open=True):
                        return  # not attempted: the window is not finished without it
                    if name in window.uploaded:
                        window.notes.append(f"{name} was still open: uploaded as far as written")
        if window.attempted:
            return  # a failed attempt is retried at the next step (same key): the manifest waits for it
        self._finish(window)

    def _upload(self, window: Window, name: PcapName, still_open: bool = False) -> bool:
        """False when postponed, nothing sent (the spool would not keep the attempt's key, or the open file's
        copy) and no attempt pending; True when uploaded, attempted (kept as such), gone or not a pcap."""
        path = self.spool.path(name.filename)
        with self.keeper.lock:
            if not path.exists():
                return True
            self.keeper.in_flight = name
        copy = self.spool.path(f".{window.request.capture_id}-{name.filename}")
        try:
            try:
                if still_open:
                    path = _whole_records_copy(path, copy)
                summary = scan_pcap(path)
            except NotPcapError as error:
                if not still_open:  # an open file tcpdump has not flushed yet holds no whole packet
                    window.errors.append(f"{name.filename}: {error}")
                return True
            seq = window.seq_of(name.filename)
            start = summary.first_packet if summary.first_packet is not None else name.period_start
            key = pcap_key(window.request.prefix, start, seq, self.compression.suffix)
            metadata = pcap_metadata(self._identity(window), self._filter(), seq, summary)
            ends = summary.last_packet if summary.last_packet is not None else name.period_start
            if ends < window.request.trigger_at:
                metadata["pre-trigger"] = "true"
            size = path.stat().st_size
            # from here the object may reach S3 even if the attempt fails
            earlier = window.attempted.get(name.filename)  # a failed attempt's PUT may have landed
            window.attempted[name.filename] = Attempt(key, size, summary.packets)
            if not self.state.save(self.windows):  # a restarted recorder must know the key: no PUT without it
                if earlier is None:
                    window.attempted.pop(name.filename)
                else:
                    window.attempted[name.filename] = earlier
                return False
            stored = put_file(self.client, self.request.bucket, key, path, self.compression, metadata)
        except UPLOAD_ERRORS as error:  # the file stays wanted and is retried at the next step
            self.logger.warning("window upload failed", extra={"file": name.filename, "error": str(error)})
            return name.filename in window.attempted  # else it failed before any attempt: postponed
        finally:
            copy.unlink(missing_ok=True)
            with self.keeper.lock:
                self.keeper.in_flight = None
        window.attempted.pop(name.filename, None)
        window.uploaded[name.filename] = UploadedFile(
            name=name.filename,
            key=key,
            seq=seq,
            bytes=size,
            stored_bytes=stored.stored_bytes,
            packets=summary.packets,
            first_packet=metadata.get("first-packet"),
            last_packet=metadata.get("last-packet"),
            truncated_bytes=summary.trailing_bytes,
            uploaded_at=iso_utc(time.time()),
        )
        self.state.save(self.windows)
        self.logger.info(
            "uploaded",
            extra={"capture_id": window.request.capture_id, "file": name.filename, "key": key},
        )
        return True

    def _settle(self, window: Window, dropped: DroppedFile) -> None:
        """Ask S3 whether a dropped file's earlier attempt left its object there."""
        assert dropped.key is not None
        try:
            found = find_object(self.client, self.request.bucket, dropped.key)
        except UPLOAD_ERRORS as error:
            self.logger.warning(
                "could not ask S3 for a dropped file", extra={"file": dropped.name, "error": str(error)}
            )
            return
        stored: UploadedFile | None = None
        if found is not None:
            stored = recovered_upload(dropped, found.metadata, found.stored_bytes, iso_utc(time.time()))
        window.settle(dropped, stored)
        self.logger.info(
            "a dropped file's earlier upload attempt reached S3: counted as uploaded"
            if stored
            else "a dropped file's earlier upload attempt did not reach S3: counted as dropped",
            extra={"capture_id": window.request.capture_id, "file": dropped.name, "key": dropped.key},
        )

    def _identity(self, window: Window) -> Identity:
        return Identity(window.request.capture_id, self.node.cluster, self.node.node, self.node.instance_id)

    def _filter(self) -> str:
        settings: dict[str, Any] = (self.spool.read_json(CAPTURE_RECORD) or {}).get("settings") or {}
        return str(settings.get("filter", ""))

    def _finish(self, window: Window) -> None:
        manifest = self.window_manifest(window)
        key = f"{window.request.prefix}{MANIFEST}"
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        try:
            put_bytes(self.client, self.request.bucket, key, body, "application/json")
        except UPLOAD_ERRORS as error:  # retried at the next step while time remains
            self.logger.warning("window manifest upload failed", extra={"error": str(error)})
            if self._stop_by is None:
                return
        self.windows.pop(window.request.capture_id, None)
        self.state.mark_served(window.request.capture_id)
        self.state.save(self.windows)
        self.logger.info(
            "window served",
            extra={
                "capture_id": window.request.capture_id,
                "status": manifest["status"],
                "files": manifest["totals"]["files"],
                "reach": manifest["window"]["reach"],
            },
        )

    def window_manifest(self, window: Window) -> dict[str, Any]:
        """The per-node manifest of a window: the capture manifest's fields plus the window and its reach."""
        request = window.request
        files = sorted(window.uploaded.values(), key=lambda item: item.seq)
        firsts = [item.first_packet for item in files if item.first_packet]
        reached_from = min(_epoch(first) for first in firsts) if firsts else None
        reach = reach_verdict(request, reached_from)
        reasons = list(window.errors)
        if window.dropped:
            reasons.append(f"{len(window.dropped)} file(s) of the window left the ring before their upload")
        return {
            "schema": SCHEMA,
            **asdict(self._identity(window)),
            "source": "recorder",
            "status": "incomplete" if reasons else "complete",
            "incomplete_reasons": reasons,
            "notes": window.notes,
            "window": {
                "from": iso_utc(request.start),
                "to": iso_utc(request.end),
                "trigger_at": iso_utc(request.trigger_at),
                "requested_at": iso_utc(window.received_at),
                "reached_from": iso_utc(reached_from) if reached_from is not None else None,
                "lookback_asked_seconds": round(request.trigger_at - request.start, 3),
                "lookback_held_seconds": round(max(0.0, request.trigger_at - reached_from), 3)
                if reached_from is not None
                else 0.0,
                "reach": reach or "the ring held the whole lookback asked",
            },
            "capture": {"requested": self.spool.read_json(CAPTURE_RECORD), "completion": None},
            "recorder": {
                "ring_seconds": self.request.ring_seconds,
                "budget_bytes": self.request.budget_bytes,
                "evictions": asdict(self.keeper.evictions),
            },
            "upload": {"bucket": self.request.bucket, "prefix": request.prefix, "codec": self.request.codec},
            "files": [asdict(item) for item in files],
            "totals": {
                "files": len(files),
                "packets": sum(item.packets or 0 for item in files),
                "bytes": sum(item.bytes for item in files),
                "stored_bytes": sum(item.stored_bytes for item in files),
                "pre_trigger_files": sum(
                    1 for item in files if item.last_packet and _epoch(item.last_packet) < request.trigger_at
                ),
            },
            "dropped": {"files": len(window.dropped), "items": [asdict(item) for item in window.dropped]},
            "written_at": iso_utc(time.time()),
        }


def _whole_records_copy(path: Path, copy: Path) -> Path:
    """A copy of a file tcpdump is still writing, cut after its last whole record."""
    size = path.stat().st_size
    with path.open("rb") as source, copy.open("wb") as target:
        target.write(source.read(size))
    os.truncate(copy, size - scan_pcap(copy).trailing_bytes)
    return copy


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
