"""tcpdump's packet stream cut into the spool's rotated files, never past the spool's byte budget.

tcpdump writes its pcap stream to a pipe (``-w - -U``) and this writer cuts it into files named and
rotated as tcpdump's own ``-G``/``-C`` would (a file is closed before the next one exists). With a
budget, no byte of a new file is written until the spool, measured as the kubelet measures an
emptyDir, has room for that file at its largest plus the documents' rewrites: the spool stays within
budget at every instant, whatever the packet rate. While there is no room the writer stops reading;
tcpdump blocks on the pipe and the kernel drops, and counts, what does not fit. tcpdump stopped while
so blocked loses the one packet it was writing (its SIGTERM handler has no SA_RESTART; glibc drops the
buffer whose write failed) although it counted it as captured, and once tcpdump is stopped the writer
waits for room only until ``give_up_at``: ``packets`` counts what did reach a file, so the manifest can
say how many never did.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from eks_capture_agent.budget import DOCUMENT_SLACK_BYTES, largest_file_bytes, room_for_next_file
from eks_capture_agent.pcapscan import GLOBAL_HEADER_BYTES, MAGICS, RECORD_HEADER_BYTES
from eks_capture_agent.spool import TCPDUMP_PATTERN, PcapName, Spool

READ_BYTES = 1 << 20
ROOM_CHECK_SECONDS = 0.01


class StreamError(ValueError):
    """tcpdump's output is not a pcap stream."""


class NoRoomError(Exception):
    """The spool had no room for the next file by ``give_up_at``: the rest of the stream is not written."""


@dataclass(frozen=True)
class Rotation:
    """When a new file starts: a new period every ``seconds``, or past ``file_bytes`` (0 = never)."""

    seconds: int
    file_bytes: int
    snaplen: int

    @property
    def largest_file(self) -> int:
        """Allocated bytes a file may reach (what the budget reserves for the file being written)."""
        return largest_file_bytes(self.file_bytes, self.snaplen)


@dataclass
class _OpenFile:
    name: PcapName
    fd: int
    bytes: int


class RotatingWriter:
    """Feed it tcpdump's stream in chunks of any size; ``close`` when tcpdump has exited."""

    def __init__(
        self,
        spool: Spool,
        rotation: Rotation,
        budget_bytes: int | None,
        logger: Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.rotation = rotation
        self.budget_bytes = budget_bytes
        self.files = 0
        self.packets = 0
        self.waited_seconds = 0.0
        #: Past this time.monotonic() the writer no longer waits for room (set once tcpdump is stopping).
        self.give_up_at: float | None = None
        self._logger = logger
        self._clock = clock
        self._pending = b""
        self._header: bytes | None = None
        self._order = "<"
        self._file: _OpenFile | None = None
        self._period_start = 0.0
        self._noted_full = False

    def feed(self, data: bytes) -> None:
        """Write every whole record of ``data`` (plus what was left over) to the file it belongs in."""
        buffer = self._pending + data
        offset = 0
        if self._header is None:
            if len(buffer) < GLOBAL_HEADER_BYTES:
                self._pending = buffer
                return
            self._header = buffer[:GLOBAL_HEADER_BYTES]
            if self._header[:4] not in MAGICS:
                raise StreamError(f"tcpdump's output is not pcap (magic {self._header[:4].hex()})")
            self._order = MAGICS[self._header[:4]][0]
            offset = GLOBAL_HEADER_BYTES
        now = self._clock()
        if self._file is None:
            self._rotate(now)  # like tcpdump, the first file exists from the start
        length_at = struct.Struct(f"{self._order}I")
        run_start = offset
        run_records = 0
        while len(buffer) - offset >= RECORD_HEADER_BYTES:
            record = RECORD_HEADER_BYTES + length_at.unpack_from(buffer, offset + 8)[0]
            if len(buffer) - offset < record:
                break
            if self._must_rotate(now, offset - run_start, record):
                self._write(buffer[run_start:offset])
                self.packets += run_records
                run_start, run_records = offset, 0
                self._rotate(now)
            offset += record
            run_records += 1
        self._write(buffer[run_start:offset])
        self.packets += run_records
        self._pending = buffer[offset:]

    def close(self) -> None:
        """Close the last file; a partial record tcpdump left (it was killed mid-write) is kept in it, unless
        a write failed (then nothing is pending)."""
        try:
            if self._pending and self._file is not None:
                self._write(self._pending)
        finally:
            self._pending = b""
            if self._file is not None:
                os.close(self._file.fd)
                self._file = None

    def _must_rotate(self, now: float, unwritten: int, record: int) -> bool:
        """tcpdump's rule: a new period after ``seconds``; a new file when the record would pass the size
        (a file always takes at least one record)."""
        current = self._file
        if current is None:
            return True
        if now - self._period_start >= self.rotation.seconds:
            return True
        size = current.bytes + unwritten
        limit = self.rotation.file_bytes
        return bool(limit) and size + record > limit and size > GLOBAL_HEADER_BYTES

    def _rotate(self, now: float) -> None:
        """Close the file, open the next (empty: the old one now counts as closed), wait for room, write
        the header."""
        previous = self._file
        if previous is not None:
            os.close(previous.fd)
        if previous is None or now - self._period_start >= self.rotation.seconds:
            self._period_start = now
            name = PcapName(time.strftime(TCPDUMP_PATTERN.removesuffix(".pcap"), time.gmtime(now)), 0)
            # After the newest file, even a previous run's (a restarted record container keeps its ring):
            # never a name that truncates a file or sorts before one.
            latest = previous.name if previous is not None else max(self.spool.pcap_names(), default=None)
            if latest is not None and name <= latest:
                name = PcapName(latest.stamp, latest.counter + 1)
        else:
            name = PcapName(previous.name.stamp, previous.name.counter + 1)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        path = self.spool.path(name.filename)
        fd = os.open(path, flags, 0o644)
        self._file = _OpenFile(name, fd, 0)
        assert self._header is not None
        try:
            self._wait_for_room()
            self._write(self._header)
        except (NoRoomError, OSError):
            os.close(fd)
            path.unlink()  # empty: no uploader should find a file without even a header
            self._file = None
            raise
        self.files += 1

    def _wait_for_room(self) -> None:
        if self.budget_bytes is None:
            return
        started = time.monotonic()
        while True:
            usage = self.spool.usage()
            needed = room_for_next_file(self.rotation.largest_file, usage.documents)
            if usage.total + needed <= self.budget_bytes:
                break
            if self.give_up_at is not None and time.monotonic() >= self.give_up_at:
                self.waited_seconds += time.monotonic() - started
                raise NoRoomError(
                    f"no room for the next file by the stop ({usage.total} of {self.budget_bytes} bytes used)"
                )
            if not self._noted_full:
                self._noted_full = True
                self._logger.warning(
                    "spool full: tcpdump waits (the kernel drops and counts) until the uploader frees room;"
                    " later waits are only added up in the marker",
                    extra={"usage_bytes": usage.total, "budget_bytes": self.budget_bytes},
                )
            time.sleep(ROOM_CHECK_SECONDS)
        self.waited_seconds += time.monotonic() - started

    def _write(self, data: bytes) -> None:
        """All of ``data`` or none of it: a write the disk cuts short and then refuses (ENOSPC, EFBIG) is
        taken back, so a file holds exactly the whole records ``packets`` counts. The writer is then done:
        nothing is left pending for ``close``, and only ``close`` may follow."""
        if not data:
            return
        current = self._file
        assert current is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(current.fd, view)
                view = view[written:]
        except OSError:
            os.ftruncate(current.fd, current.bytes)
            self._pending = b""
            raise
        current.bytes += len(data)


def minimum_budget(rotation: Rotation) -> int:
    """The smallest budget that never stalls for good: the file in upload, the file being written, and
    room for the documents."""
    return 2 * rotation.largest_file + DOCUMENT_SLACK_BYTES
