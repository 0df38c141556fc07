"""Which files to give up when the spool outgrows its byte budget (a pure decision).

Only closed files that are not being uploaded may go, oldest first, and only as many as needed to
bring the spool back under budget: the file tcpdump is writing cannot be freed, and the upload in
flight is the one most likely to finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eks_capture_agent.spool import PcapName


@dataclass(frozen=True)
class SpoolFile:
    """A closed pcap file the budget may drop, with the bytes dropping it frees."""

    name: PcapName
    bytes: int


def files_to_drop(
    closed: Sequence[SpoolFile], usage_bytes: int, budget_bytes: int, in_flight: PcapName | None
) -> list[SpoolFile]:
    """The oldest closed files to delete so that usage falls to the budget, or as near as it can."""
    excess = usage_bytes - budget_bytes
    chosen: list[SpoolFile] = []
    for candidate in sorted(closed, key=lambda spool_file: spool_file.name):
        if excess <= 0:
            break
        if candidate.name == in_flight:
            continue
        chosen.append(candidate)
        excess -= candidate.bytes
    return chosen
