"""The analysis summary: what the indexer stores and ``eks-capture analyze --json`` prints.

Frozen pydantic models with a stable JSON form (``model_dump(mode="json")``); times are ISO 8601 UTC
with a ``Z``. Add fields, never rename or retype them: stored summaries are read back by the CLI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_serializer

from eks_capture.times import iso_utc

Severity = Literal["critical", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TcpSummary(_Frozen):
    """TCP counts; each equals the frames of the tshark display filter named beside it."""

    connections: int = 0  # tcp.stream values
    retransmissions: int = 0  # tcp.analysis.retransmission (includes fast and spurious)
    fast_retransmissions: int = 0  # tcp.analysis.fast_retransmission
    spurious_retransmissions: int = 0  # tcp.analysis.spurious_retransmission
    out_of_order: int = 0  # tcp.analysis.out_of_order
    duplicate_acks: int = 0  # tcp.analysis.duplicate_ack
    resets: int = 0  # tcp.flags.reset == 1
    unanswered_syns: int = 0  # streams whose tcp.completeness has SYN but neither SYN-ACK nor RST
    refused: int = 0  # streams whose tcp.completeness has SYN and RST but no SYN-ACK
    zero_windows: int = 0  # tcp.analysis.zero_window


class DnsSummary(_Frozen):
    """DNS counts (UDP 53, mDNS and LLMNR, as Wireshark's ``dns.*`` fields)."""

    queries: int = 0  # dns.flags.response == 0
    responses: int = 0  # dns.flags.response == 1
    nxdomain: int = 0  # dns.flags.rcode == 3
    servfail: int = 0  # dns.flags.rcode == 2
    unanswered: int = 0  # queries without dns.response_in (tshark -2)


class IcmpSummary(_Frozen):
    """ICMP errors that point at network problems."""

    unreachable: int = 0  # icmp.type == 3
    frag_needed: int = 0  # icmp.type == 3 && icmp.code == 4
    v6_unreachable: int = 0  # icmpv6.type == 1
    v6_packet_too_big: int = 0  # icmpv6.type == 2


class Talker(_Frozen):
    """One IP address and the traffic it sent or received."""

    address: str
    name: str | None = None
    bytes: int
    packets: int


class Finding(_Frozen):
    """One plain-language observation; ``kind`` is stable for machines, ``message`` is for people."""

    severity: Severity
    kind: str
    message: str
    count: int
    subject: str


class CaptureSummary(_Frozen):
    """Everything the analyzer concluded about one capture file."""

    schema_version: int = SCHEMA_VERSION
    format: str
    compression: str
    packets: int
    bytes: int
    first_ts: datetime | None
    last_ts: datetime | None
    link_types: list[str]
    partial: bool
    partial_reason: str | None = None
    tcp: TcpSummary
    dns: DnsSummary
    icmp: IcmpSummary
    top_talkers: list[Talker]
    findings: list[Finding]

    @field_serializer("first_ts", "last_ts")
    def _iso_utc(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return iso_utc(value, micros=True)
