"""Which files to give up when the spool outgrows its byte budget (pure decisions).

Only closed files that are not being uploaded may go, oldest first, and only as many as needed: the
file tcpdump is writing cannot be freed, and the upload in flight is the one most likely to finish.
With size rotation the decision keeps room for the open file to reach its size limit and for the
next file to start, plus the documents' rewrites: the capture role opens no file without that room
(eks_capture_agent.rotation), so the spool stays within budget between checks too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eks_capture_agent.spool import PcapName

RECORD_HEADER_BYTES = 16
GLOBAL_HEADER_BYTES = 24
BLOCK_BYTES = 4096
#: Beyond the documents' own size (each may be rewritten through a temp copy): room for small writes.
DOCUMENT_SLACK_BYTES = 16 * BLOCK_BYTES


@dataclass(frozen=True)
class SpoolFile:
    """A closed pcap file the budget may drop, with the bytes dropping it frees."""

    name: PcapName
    bytes: int


def largest_file_bytes(rotate_bytes: int, snaplen: int) -> int:
    """Allocated bytes a pcap file may reach: the rotation size, or one header and one whole packet."""
    largest = max(rotate_bytes, GLOBAL_HEADER_BYTES + RECORD_HEADER_BYTES + snaplen)
    return -(-largest // BLOCK_BYTES) * BLOCK_BYTES


def room_for_next_file(largest_file: int, documents_bytes: int) -> int:
    """Free bytes a new file needs before its first byte: itself at its largest, and a rewrite of every
    document (written through a temp copy) with some slack."""
    return largest_file + documents_bytes + DOCUMENT_SLACK_BYTES


def open_file_headroom(rotate_bytes: int, snaplen: int, open_file_bytes: int) -> int:
    """Bytes to keep free: the open file may still grow to its largest, and the file after it must find
    room to start. Zero without size rotation."""
    if rotate_bytes <= 0:
        return 0
    return max(0, 2 * largest_file_bytes(rotate_bytes, snaplen) - open_file_bytes)


def files_to_drop(
    closed: Sequence[SpoolFile],
    usage_bytes: int,
    budget_bytes: int,
    in_flight: PcapName | None,
    headroom_bytes: int = 0,
) -> list[SpoolFile]:
    """The oldest closed files to delete so that usage plus headroom falls to the budget, or near it."""
    excess = usage_bytes + headroom_bytes - budget_bytes
    chosen: list[SpoolFile] = []
    for candidate in sorted(closed, key=lambda spool_file: spool_file.name):
        if excess <= 0:
            break
        if candidate.name == in_flight:
            continue
        chosen.append(candidate)
        excess -= candidate.bytes
    return chosen
