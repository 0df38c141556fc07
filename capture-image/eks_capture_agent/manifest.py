"""The per-node manifest, written last: what was captured, what reached S3, what was lost and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eks_capture_agent.identity import Identity
from eks_capture_agent.ledger import Ledger

MANIFEST = "manifest.json"
SCHEMA = 1


@dataclass(frozen=True)
class UploadTarget:
    """Where and how the upload role stores files."""

    bucket: str
    prefix: str
    codec: str
    level: int
    budget_bytes: int


def unwritten_packets(marker: dict[str, Any] | None) -> int:
    """Packets tcpdump counted as captured that never reached a file: the one it was writing when it was
    stopped while the full spool held it back, what then found no room in time
    (eks_capture_agent.rotation), or what it wrote after the spool failed. 0 when the marker cannot tell
    (no marker, no counters, an agent that did not count its files' packets)."""
    completion = marker or {}
    captured = ((completion.get("tcpdump") or {}).get("counters") or {}).get("captured")
    written = (completion.get("spool") or {}).get("packets")
    if not isinstance(captured, int) or not isinstance(written, int):
        return 0
    return max(0, captured - written)


def incomplete_reasons(
    marker: dict[str, Any] | None,
    ledger: Ledger,
    unwritten: int,
    not_uploaded: list[str],
    not_uploaded_packets: int,
) -> list[str]:
    """Why the node's capture is not whole in S3; empty when it is. ``unwritten``: the marker's
    ``unwritten_packets``."""
    reasons = []
    if marker is None:
        reasons.append("the capture role never wrote its completion marker")
    if unwritten:
        error = ((marker or {}).get("tcpdump") or {}).get("error")
        why = (
            f"the capture failed: {error}"
            if error
            else "tcpdump was stopped while its write to the capture role waited on a full pipe (the spool"
            " without room, or the capture role behind), and it discards the write its stop signal cuts; what"
            " followed found no room in time"
        )
        reasons.append(f"{unwritten} packet(s) tcpdump counted as captured never reached a file: {why}")
    if ledger.dropped:
        dropped_bytes = sum(item.bytes for item in ledger.dropped)
        reasons.append(
            f"{len(ledger.dropped)} file(s), {dropped_bytes} bytes, dropped to keep the spool budget"
        )
    if not_uploaded:
        reasons.append(
            f"{len(not_uploaded)} file(s), {not_uploaded_packets} packets, still in the spool when the upload"
            " role had to stop"
        )
    return reasons


def build_manifest(
    identity: Identity,
    target: UploadTarget,
    capture_record: dict[str, Any] | None,
    marker: dict[str, Any] | None,
    ledger: Ledger,
    not_uploaded: list[str],
    not_uploaded_packets: int,
    written_at: str,
) -> dict[str, Any]:
    """The manifest document (see capture-image/README.md for the field list). ``not_uploaded_packets``:
    the packets in the pcaps left in the spool, lost as far as this manifest can tell."""
    unwritten = unwritten_packets(marker)
    reasons = incomplete_reasons(marker, ledger, unwritten, not_uploaded, not_uploaded_packets)
    files = [asdict(item) for item in sorted(ledger.uploaded, key=lambda item: item.seq)]
    return {
        "schema": SCHEMA,
        **asdict(identity),
        "status": "incomplete" if reasons else "complete",
        "incomplete_reasons": reasons,
        "capture": {
            "requested": capture_record,
            "completion": marker,
        },
        "upload": {**asdict(target), "peak_spool_bytes": ledger.peak_spool_bytes},
        "files": files,
        "totals": {
            "files": len(files),
            "packets": sum(item["packets"] or 0 for item in files),
            "bytes": sum(item["bytes"] for item in files),
            "stored_bytes": sum(item["stored_bytes"] for item in files),
        },
        "dropped": {
            "files": len(ledger.dropped),
            "bytes": sum(item.bytes for item in ledger.dropped),
            "packets": sum(item.packets or 0 for item in ledger.dropped) + unwritten + not_uploaded_packets,
            "unwritten_packets": unwritten,
            "not_uploaded_packets": not_uploaded_packets,
            "items": [asdict(item) for item in ledger.dropped],
        },
        "not_uploaded": not_uploaded,
        "documents": list(ledger.documents),
        "errors": ledger.errors,
        "written_at": written_at,
    }
