"""The capture role: run tcpdump for the asked duration, then leave counters, snapshots and a marker.

Order of what lands in the spool: ``capture.json`` (what was asked), ``netstate-before.json``, the
rotated files of tcpdump's stream (cut by eks_capture_agent.rotation, within the spool budget),
``netstate-after.json``, and last ``capture-done.json`` (the completion marker) -- the upload role
and the recorder treat every pcap as closed once the marker exists. So a run first removes the marker
a previous run left: a restarted ``record`` container keeps its emptyDir, and with the old marker in
place the file it writes would count as closed the moment it exists (uploaded once, half written).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from aws_lambda_powertools import Logger

from eks_capture_agent import netstate
from eks_capture_agent.capabilities import missing_capabilities
from eks_capture_agent.identity import Identity
from eks_capture_agent.rotation import NoRoomError, RotatingWriter, Rotation, StreamError
from eks_capture_agent.spool import (
    CAPTURE_RECORD,
    COMPLETION_MARKER,
    SNAPSHOT_AFTER,
    SNAPSHOT_BEFORE,
    Spool,
)
from eks_capture_agent.tcpdump import LISTENING, CaptureSettings, error_message, parse_counters, tcpdump_argv
from eks_capture_agent.timestamps import iso_utc

EXIT_OK = 0
EXIT_TCPDUMP_FAILED = 3
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
ROOM_AT_STOP_SECONDS = 20.0
READ_BYTES = 1 << 20
#: tcpdump's stdout pipe: Linux's default 64 KiB holds ~20 ms of a 3 MB/s capture, so a pump briefly behind
#: (a loaded node) blocks tcpdump's write, and a stop signal then cuts it and loses a counted packet; 1 MiB
#: (the default pipe-max-size an unprivileged process may ask for) holds ~330 ms.
PIPE_BYTES = 1 << 20
SCHEMA = 1


@dataclass(frozen=True)
class CaptureRequest:
    """Everything the capture role was asked to do."""

    spool: Path
    duration_seconds: int
    settings: CaptureSettings
    tcpdump: str = "tcpdump"
    budget_bytes: int | None = None

    @property
    def rotation(self) -> Rotation:
        settings = self.settings
        return Rotation(settings.rotate_seconds, settings.rotate_megabytes * 1_000_000, settings.snaplen)


class _Stderr:
    """tcpdump's stderr, read on a thread: logged line by line and kept for counters and errors."""

    def __init__(self, stream: Any, logger: Logger) -> None:
        self.lines: list[str] = []
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(stream, logger), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any, logger: Logger) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            self.lines.append(line)
            logger.info("tcpdump", extra={"tcpdump_stderr": line})
            if LISTENING.match(line):
                self.listening.set()

    def join(self) -> None:
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)


class StreamPump:
    """tcpdump's stdout, read on a thread into the rotating writer until tcpdump closes it.

    A writer failure (a full disk, output that is not pcap) is kept as the capture's error; the rest of
    the stream is then read and discarded so tcpdump can still exit and print its counters. So is the
    rest of a stopped capture's stream that found no room in time: a loss, counted, not a failure.
    """

    def __init__(self, stream: Any, writer: RotatingWriter, logger: Logger) -> None:
        self.error: str | None = None
        self._gave_up = False
        self._writer = writer
        self._logger = logger
        self._thread = threading.Thread(target=self._pump, args=(stream.fileno(),), daemon=True)
        self._thread.start()

    def _pump(self, fd: int) -> None:
        while data := os.read(fd, READ_BYTES):
            if self.error is not None or self._gave_up:
                continue
            try:
                self._writer.feed(data)
            except NoRoomError as error:
                self._gave_up = True
                self._logger.warning(
                    "the spool had no room for the rest of the stopped tcpdump's stream: not written, counted"
                    " as lost in the manifest",
                    extra={"error": str(error), "waited_seconds": ROOM_AT_STOP_SECONDS},
                )
            except (StreamError, OSError) as error:
                self.error = f"writing the spool failed: {error}"
        try:
            self._writer.close()
        except OSError as error:
            self.error = self.error or f"writing the spool failed: {error}"

    def join(self) -> None:
        self._thread.join()


def _stop_on_signals(stop: threading.Event) -> dict[str, str]:
    received: dict[str, str] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        received["signal"] = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return received


def _stop(process: subprocess.Popen[str], logger: Logger, reason: str) -> None:
    """SIGTERM lets tcpdump flush and close its file and print its counters; SIGKILL only if it hangs."""
    if process.poll() is not None:
        return
    logger.info("stopping tcpdump", extra={"stop_reason": reason})
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        logger.error("tcpdump ignored SIGTERM; killing it", extra={"timeout_seconds": STOP_TIMEOUT_SECONDS})
        process.kill()
        process.wait()


def run_capture(request: CaptureRequest, identity: Identity, logger: Logger) -> int:
    """Capture until the duration ends, a stop signal arrives or tcpdump exits; return the exit code."""
    spool = Spool(request.spool)
    spool.path(COMPLETION_MARKER).unlink(missing_ok=True)  # a previous run's, before any file of this one
    stop = threading.Event()
    received = _stop_on_signals(stop)
    argv = tcpdump_argv(request.settings, as_root=os.geteuid() == 0, binary=request.tcpdump)
    started = time.time()
    spool.write_json(
        CAPTURE_RECORD,
        {
            "schema": SCHEMA,
            **asdict(identity),
            "settings": asdict(request.settings),
            "duration_seconds": request.duration_seconds,
            "started_at": iso_utc(started),
            "expected_end": iso_utc(started + request.duration_seconds),
            "tcpdump_argv": argv,
        },
    )
    spool.write_json(SNAPSHOT_BEFORE, netstate.snapshot())
    missing = missing_capabilities(Path("/proc/self/status").read_text()) if os.geteuid() == 0 else []
    if missing:
        error = (
            f"running as root without capabilities {', '.join(missing)}: tcpdump -Z root needs NET_RAW and"
            " SETGID in the container's securityContext.capabilities.add"
        )
        return _finish(spool, None, [], argv, started, {"stop_reason": "start-failed"}, logger, error)
    logger.info("starting tcpdump", extra={"argv": argv, "duration_seconds": request.duration_seconds})
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TZ": "UTC"},
    )
    writer = RotatingWriter(spool, request.rotation, request.budget_bytes, logger)
    assert process.stdout is not None
    try:
        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError as error:  # a lower pipe-max-size: the default pipe still works
        logger.warning("could not enlarge tcpdump's pipe", extra={"error": str(error), "bytes": PIPE_BYTES})
    stream = StreamPump(process.stdout, writer, logger)
    stderr = _Stderr(process.stderr, logger)
    deadline = time.monotonic() + request.duration_seconds
    ended = _wait_for_end(process, stderr, stop, deadline, logger, stream)
    writer.give_up_at = time.monotonic() + ROOM_AT_STOP_SECONDS
    _stop(process, logger, ended["stop_reason"])
    stderr.join()
    stream.join()
    written = {
        "files": writer.files,
        "packets": writer.packets,
        "waited_for_room_seconds": round(writer.waited_seconds, 3),
    }
    stopped = {**ended, **received}
    code = process.returncode
    return _finish(spool, code, stderr.lines, argv, started, stopped, logger, stream.error, written)


def _wait_for_end(
    process: subprocess.Popen[str],
    stderr: _Stderr,
    stop: threading.Event,
    deadline: float,
    logger: Logger,
    stream: StreamPump,
) -> dict[str, str]:
    """Block until tcpdump fails to start, exits, the duration runs out or a signal asks to stop."""
    start_by = time.monotonic() + START_TIMEOUT_SECONDS
    while not stderr.listening.is_set():
        if process.poll() is not None:
            return {"stop_reason": "start-failed"}
        if stop.is_set():
            return {"stop_reason": "signal"}
        if time.monotonic() > start_by:
            logger.error("tcpdump did not start listening", extra={"timeout_seconds": START_TIMEOUT_SECONDS})
            return {"stop_reason": "start-timeout"}
        stderr.listening.wait(0.05)
    logger.info("capture running")
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"stop_reason": "duration"}
        if process.poll() is not None:
            return {"stop_reason": "tcpdump-exited"}
        if stream.error is not None:
            return {"stop_reason": "spool-failed"}
        stop.wait(min(remaining, 0.5))
    return {"stop_reason": "signal"}


def _finish(
    spool: Spool,
    exit_code: int | None,
    lines: list[str],
    argv: list[str],
    started: float,
    stop: dict[str, str],
    logger: Logger,
    error: str | None = None,
    written: dict[str, Any] | None = None,
) -> int:
    counters = parse_counters(lines)
    clean_stop = stop["stop_reason"] in {"duration", "signal"} and exit_code in {0, -signal.SIGTERM}
    if error is None and not clean_stop:
        error = error_message(lines) or f"tcpdump exited with code {exit_code}"
    spool.write_json(SNAPSHOT_AFTER, netstate.snapshot())
    marker = {
        "schema": SCHEMA,
        "status": "completed" if clean_stop and error is None else "failed",
        **stop,
        "started_at": iso_utc(started),
        "ended_at": iso_utc(time.time()),
        "tcpdump": {
            "argv": argv,
            "exit_code": exit_code,
            "counters": counters.as_dict(),
            "error": error,
        },
        "snapshots": [SNAPSHOT_BEFORE, SNAPSHOT_AFTER],
        "spool": written or {"files": 0, "packets": 0, "waited_for_room_seconds": 0.0},
    }
    spool.write_json(COMPLETION_MARKER, marker)
    if error is not None:
        logger.error("capture failed", extra={"error": error, "exit_code": exit_code, **stop})
        return EXIT_TCPDUMP_FAILED
    logger.info("capture completed", extra={"counters": counters.as_dict(), **stop})
    return EXIT_OK
