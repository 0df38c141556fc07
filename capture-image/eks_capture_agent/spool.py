"""The spool directory the two roles share: what each file is called and which ones tcpdump has closed.

tcpdump names its files ``<strftime>`` for each ``-G`` period and appends a counter for each ``-C``
rotation inside a period (``20261125T124420Z.pcap``, ``...pcap1``, ``...pcap2``). The period stamp only
moves forward (tcpdump rotates when ``now - period start >= G``), so (stamp, counter) is the creation
order, and a file is closed as soon as a later one exists: tcpdump closes the old file before it
opens the next. The last file is closed once the capture role has written its completion marker.
"""

from __future__ import annotations

import json
import os
import re
from calendar import timegm
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from time import strptime
from typing import Any

TCPDUMP_PATTERN = "%Y%m%dT%H%M%SZ.pcap"
CAPTURE_RECORD = "capture.json"
COMPLETION_MARKER = "capture-done.json"
SNAPSHOT_BEFORE = "netstate-before.json"
SNAPSHOT_AFTER = "netstate-after.json"
SNAPSHOTS = (SNAPSHOT_BEFORE, SNAPSHOT_AFTER)
_PCAP_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)\.pcap(?P<counter>\d*)$")


@dataclass(frozen=True, order=True)
class PcapName:
    """A tcpdump output file name, ordered as tcpdump created the files."""

    stamp: str
    counter: int

    @property
    def filename(self) -> str:
        return f"{self.stamp}.pcap{self.counter or ''}"

    @property
    def period_start(self) -> float:
        """Epoch seconds of the rotation period the file belongs to (tcpdump wrote the name in UTC)."""
        return float(timegm(strptime(self.stamp, "%Y%m%dT%H%M%SZ")))


def parse_pcap_name(filename: str) -> PcapName | None:
    """The name's order key, or None for anything tcpdump did not write (markers, temp files)."""
    match = _PCAP_NAME.match(filename)
    if match is None:
        return None
    return PcapName(stamp=match["stamp"], counter=int(match["counter"] or 0))


def closed_files(names: list[PcapName], capture_done: bool) -> list[PcapName]:
    """Files tcpdump will not write again: all of them once the capture is done, else all but the newest."""
    ordered = sorted(names)
    return ordered if capture_done else ordered[:-1]


@dataclass(frozen=True)
class SpoolUsage:
    """Allocated bytes of the whole spool and of its non-pcap documents (JSON, temp copies)."""

    total: int
    documents: int


@dataclass(frozen=True)
class Spool:
    """The shared directory, with the few operations both roles need."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    def pcap_names(self) -> list[PcapName]:
        """tcpdump's files present now, oldest first."""
        found = (parse_pcap_name(entry.name) for entry in os.scandir(self.root) if entry.is_file())
        return sorted(name for name in found if name is not None)

    def usage(self) -> SpoolUsage:
        """Allocated bytes as the kubelet measures an emptyDir (st_blocks of the directory and of every
        entry in it), and how much of it is documents rather than tcpdump's files."""
        total = self.root.stat().st_blocks * 512
        documents = 0
        for entry in os.scandir(self.root):
            try:
                allocated = entry.stat(follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:
                continue
            total += allocated
            if parse_pcap_name(entry.name) is None:
                documents += allocated
        return SpoolUsage(total, documents)

    def usage_bytes(self) -> int:
        """Allocated bytes of the spool (what the budget limits)."""
        return self.usage().total

    def write_json(self, name: str, document: Mapping[str, Any]) -> None:
        """Write atomically (temp file + rename) so a reader never sees half a document."""
        temporary = self.root / f".{name}.tmp"
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, self.root / name)

    def read_json(self, name: str) -> dict[str, Any] | None:
        """A document written by ``write_json``, or None while it does not exist."""
        try:
            loaded = json.loads((self.root / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return loaded if isinstance(loaded, dict) else None
