"""tcpdump's command line and what it says on stderr (its counters and its errors)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

LISTENING = re.compile(r"^tcpdump: listening on ")
_COUNTER = re.compile(
    r"^(?P<count>\d+) packets? (?P<what>captured|received by filter|dropped by kernel|dropped by interface)$"
)
_COUNTER_FIELDS = {
    "captured": "captured",
    "received by filter": "received_by_filter",
    "dropped by kernel": "dropped_by_kernel",
    "dropped by interface": "dropped_by_interface",
}


@dataclass(frozen=True)
class CaptureSettings:
    """What the capture role asks tcpdump for."""

    interface: str
    filter: str
    snaplen: int
    rotate_seconds: int
    rotate_megabytes: int
    buffer_kib: int


@dataclass(frozen=True)
class TcpdumpCounters:
    """tcpdump's closing statistics; None where it did not print that line."""

    captured: int | None = None
    received_by_filter: int | None = None
    dropped_by_kernel: int | None = None
    dropped_by_interface: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def tcpdump_argv(settings: CaptureSettings, as_root: bool, binary: str = "tcpdump") -> list[str]:
    """The argv that writes the pcap stream to stdout, each packet as it comes (``-w - -U``); the
    capture role cuts it into the spool's files. The filter stays one element after ``--``.

    As root, ``-Z root`` keeps tcpdump root: Debian's build otherwise hands its files to user
    ``tcpdump`` and switches to it, which needs CHOWN and SETUID and leaves a process the agent (with
    no KILL capability) can no longer signal. Staying root costs only SETGID (tcpdump resets groups).
    """
    argv = [
        binary,
        "-n",
        "-i",
        settings.interface,
        "-s",
        str(settings.snaplen),
        "-B",
        str(settings.buffer_kib),
    ]
    argv += ["-U", "-w", "-"]
    if as_root:
        argv += ["-Z", "root"]
    if settings.filter.strip():
        argv += ["--", settings.filter]
    return argv


def parse_counters(stderr_lines: Iterable[str]) -> TcpdumpCounters:
    """The counters tcpdump prints when it stops (``N packets captured`` ...)."""
    found: dict[str, int] = {}
    for line in stderr_lines:
        match = _COUNTER.match(line.strip())
        if match:
            found[_COUNTER_FIELDS[match["what"]]] = int(match["count"])
    return TcpdumpCounters(**found)


def error_message(stderr_lines: Iterable[str]) -> str:
    """What tcpdump said that is neither its banner nor a counter: the reason it failed."""
    kept = []
    for line in stderr_lines:
        text = line.strip()
        if text and not LISTENING.match(text) and not _COUNTER.match(text):
            kept.append(text)
    return "\n".join(kept)
