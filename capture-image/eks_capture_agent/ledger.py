"""What the upload role has done so far, kept in the spool so a restarted uploader carries on.

Sequence numbers are handed out in tcpdump's creation order the first time a file is seen closed, so a
file dropped for the budget leaves a visible gap in the sequence of uploaded objects, and every seq is a
file uploaded, dropped, or left in the spool when the upload role had to stop (the manifest's
``not_uploaded``); the file being written is not numbered: the capture role removes it if it never
found room for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from eks_capture_agent.spool import PcapName, Spool

LEDGER = ".upload-ledger.json"
MAX_ERRORS = 50


@dataclass(frozen=True)
class UploadedFile:
    """A pcap S3 has confirmed; the local copy is gone."""

    name: str
    key: str
    seq: int
    bytes: int
    stored_bytes: int
    packets: int | None
    first_packet: str | None
    last_packet: str | None
    truncated_bytes: int
    uploaded_at: str


@dataclass(frozen=True)
class DroppedFile:
    """A pcap deleted unuploaded to keep the spool within its budget."""

    name: str
    seq: int
    bytes: int
    dropped_at: str
    reason: str
    packets: int | None = None  # None when the file could not be read before it went
    #: The object a failed upload attempt may still have left in S3 (its PUT landed, the answer was lost);
    #: None once S3 has been asked, or when no attempt was made.
    key: str | None = None


class Settling(ABC):
    """Keeps dropped files until S3 answers for a failed attempt's key (the upload role's ledger, a
    recorder's window): each file must be counted once, as uploaded or as dropped, as S3 has it."""

    dropped: list[DroppedFile]

    def unsettled(self) -> list[DroppedFile]:
        """Dropped files S3 may hold after all."""
        return [item for item in self.dropped if item.key is not None]

    def settle(self, dropped: DroppedFile, stored: UploadedFile | None) -> None:
        """What S3 answered for a dropped file's key: the object it holds makes the file uploaded, else the
        file stays dropped, with nothing left to ask."""
        index = self.dropped.index(dropped)
        if stored is None:
            self.dropped[index] = replace(dropped, key=None)
        else:
            del self.dropped[index]
            self.count_uploaded(stored)

    @abstractmethod
    def count_uploaded(self, stored: UploadedFile) -> None:
        """Record a file S3 holds as uploaded."""


@dataclass
class Ledger(Settling):
    """Uploaded and dropped files, sequence numbers, uploaded documents and repeated errors."""

    seqs: dict[str, int] = field(default_factory=dict)
    uploaded: list[UploadedFile] = field(default_factory=list)
    dropped: list[DroppedFile] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    peak_spool_bytes: int = 0
    #: Files whose upload has started and not been confirmed, with the key it writes.
    attempted: dict[str, str] = field(default_factory=dict)

    def number(self, names: list[PcapName]) -> None:
        """Hand out sequence numbers to files not seen before, in tcpdump's creation order."""
        for name in sorted(names):
            self.seqs.setdefault(name.filename, len(self.seqs))

    def count_uploaded(self, stored: UploadedFile) -> None:
        self.uploaded.append(stored)

    def note_error(self, what: str, message: str, at: str) -> None:
        """Remember an error; a repeat of the previous one only bumps its count (outages repeat)."""
        if self.errors and self.errors[-1]["what"] == what and self.errors[-1]["message"] == message:
            self.errors[-1]["count"] += 1
            self.errors[-1]["last_at"] = at
            return
        self.errors.append({"what": what, "message": message, "first_at": at, "last_at": at, "count": 1})
        del self.errors[:-MAX_ERRORS]

    def save(self, spool: Spool) -> None:
        spool.write_json(LEDGER, asdict(self))

    @classmethod
    def load(cls, spool: Spool) -> Ledger:
        """The ledger a previous run left, or an empty one."""
        saved = spool.read_json(LEDGER)
        if saved is None:
            return cls()
        return cls(
            seqs={str(name): int(seq) for name, seq in saved["seqs"].items()},
            uploaded=[UploadedFile(**item) for item in saved["uploaded"]],
            dropped=[DroppedFile(**item) for item in saved["dropped"]],
            documents=list(saved["documents"]),
            errors=list(saved["errors"]),
            peak_spool_bytes=int(saved["peak_spool_bytes"]),
            attempted={str(name): str(key) for name, key in saved.get("attempted", {}).items()},
        )


def recovered_upload(
    dropped: DroppedFile, metadata: Mapping[str, str], stored_bytes: int, at: str
) -> UploadedFile:
    """A dropped file's object found in S3, as an upload: its packets and times from the object's metadata
    (objects.pcap_metadata), its size from the drop. A closed file has no partial record to truncate."""
    assert dropped.key is not None
    packets = metadata.get("packets")
    return UploadedFile(
        name=dropped.name,
        key=dropped.key,
        seq=dropped.seq,
        bytes=dropped.bytes,
        stored_bytes=stored_bytes,
        packets=int(packets) if packets is not None else dropped.packets,
        first_packet=metadata.get("first-packet"),
        last_packet=metadata.get("last-packet"),
        truncated_bytes=0,
        uploaded_at=at,
    )
