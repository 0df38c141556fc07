"""S3 object names and metadata of uploaded files (pure), per docs/design.md."""

from __future__ import annotations

from eks_capture_agent.identity import Identity
from eks_capture_agent.pcapscan import PcapSummary
from eks_capture_agent.timestamps import compact_utc, iso_utc

FILTER_METADATA_CHARS = 1024


def pcap_key(prefix: str, start_epoch: float, seq: int, suffix: str) -> str:
    """``<prefix><YYYYmmddTHHMMSSZ>-<seq:05d>.pcap<suffix>``: sorts by time, then by sequence."""
    return f"{prefix}{compact_utc(start_epoch)}-{seq:05d}.pcap{suffix}"


def metadata_filter(capture_filter: str) -> str:
    """The filter as a header can carry it: one line of printable ASCII, at most 1 KiB (manifest: whole)."""
    flat = " ".join(capture_filter.split())
    printable = "".join(char if " " <= char <= "~" else "?" for char in flat)
    if len(printable) <= FILTER_METADATA_CHARS:
        return printable
    return printable[: FILTER_METADATA_CHARS - 3] + "..."


def pcap_metadata(
    identity: Identity, capture_filter: str, seq: int, summary: PcapSummary | None
) -> dict[str, str]:
    """``x-amz-meta-*`` of a pcap object; first/last packet only where the file has packets."""
    metadata = {
        "capture-id": identity.capture_id,
        "cluster": identity.cluster,
        "node": identity.node,
        "filter": metadata_filter(capture_filter),
        "seq": str(seq),
    }
    if identity.instance_id:
        metadata["instance-id"] = identity.instance_id
    if summary is not None and summary.first_packet is not None and summary.last_packet is not None:
        metadata["first-packet"] = iso_utc(summary.first_packet)
        metadata["last-packet"] = iso_utc(summary.last_packet)
        metadata["packets"] = str(summary.packets)
    return metadata
