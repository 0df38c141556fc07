"""The summary's stable JSON form, the ranking and naming of findings, and ``eks-capture analyze``."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest
from typer.testing import CliRunner

from eks_capture.pcap import CaptureSummary, analyze, analyze_file
from eks_capture_cli import app
from tests.fixtures.packets import (
    ACK,
    CLIENT,
    RST,
    SERVER,
    SYN,
    Packet,
    dns,
    ethernet,
    ipv4,
    ipv6,
    pcap,
    summarize,
    tcp,
    udp,
)

T0 = 1_764_000_000_123_456_000
MS = 1_000_000
TOP_LEVEL = {
    "schema_version", "format", "compression", "packets", "bytes", "first_ts", "last_ts", "link_types",
    "partial", "partial_reason", "tcp", "dns", "icmp", "top_talkers", "findings",
}  # fmt: skip
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def faulty_frames() -> list[bytes]:
    """3 unanswered SYNs to :443, 1 refused connection to :80, 2 SERVFAIL and 1 NXDOMAIN from SERVER."""
    frames = [ethernet(ipv4(tcp(1000 + i, 0, SYN, sport=40000 + i))) for i in range(3)]
    frames += [
        ethernet(ipv4(tcp(7, 0, SYN, sport=41000, dport=80))),
        ethernet(ipv4(tcp(0, 8, RST | ACK, sport=80, dport=41000), SERVER, CLIENT)),
    ]
    for ident, rcode in ((1, 2), (2, 2), (3, 3)):
        frames.append(ethernet(ipv4(udp(dns(ident)))))
        frames.append(ethernet(ipv4(udp(dns(ident, True, rcode), sport=53, dport=40000), SERVER, CLIENT)))
    return frames


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "faulty.pcap"
    path.write_bytes(pcap([Packet(T0 + i * MS, frame) for i, frame in enumerate(faulty_frames())]))
    return path


def test_json_form_has_the_documented_fields_and_iso_utc_times(capture: Path) -> None:
    document = analyze_file(capture).model_dump(mode="json")
    assert set(document) == TOP_LEVEL
    assert {"connections", "retransmissions", "resets", "unanswered_syns", "zero_windows"} <= set(
        document["tcp"]
    )
    assert {"queries", "nxdomain", "servfail", "unanswered"} <= set(document["dns"])
    assert {"unreachable", "frag_needed"} <= set(document["icmp"])
    assert ISO_UTC.match(document["first_ts"])
    assert document["first_ts"] == datetime.fromtimestamp(T0 / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_json_round_trips_into_an_equal_frozen_summary(capture: Path) -> None:
    summary = analyze_file(capture)
    again = CaptureSummary.model_validate_json(summary.model_dump_json())
    assert again == summary
    with pytest.raises(pydantic.ValidationError):
        summary.packets = 0


def test_findings_come_most_severe_first_then_by_count(capture: Path) -> None:
    findings = analyze_file(capture).findings
    assert [(f.kind, f.count) for f in findings] == [
        ("tcp.unanswered_syns", 3),
        ("dns.servfail", 2),
        ("tcp.refused", 1),
        ("dns.nxdomain", 1),
    ]
    assert findings[0].message == f"3 SYNs to {SERVER}:443 never answered"
    assert findings[1].message == f"DNS SERVFAIL from {SERVER} for 2 queries"


def test_a_context_names_endpoints_in_findings_and_top_talkers(capture: Path) -> None:
    summary = analyze_file(capture, context={SERVER: "shop/api-7f9c", CLIENT: "shop/web-1"})
    assert summary.findings[0].message == f"3 SYNs to shop/api-7f9c ({SERVER}):443 never answered"
    assert {t.address: t.name for t in summary.top_talkers} == {SERVER: "shop/api-7f9c", CLIENT: "shop/web-1"}


def test_top_talkers_are_ranked_by_bytes_and_limited() -> None:
    sizes = {"10.0.1.1": 10, "10.0.1.2": 300, "10.0.1.3": 20, "10.0.1.4": 200}
    frames = [ethernet(ipv4(udp(b"x" * size), CLIENT, peer)) for peer, size in sizes.items()]
    summary = analyze(io.BytesIO(pcap([Packet(T0, frame) for frame in frames])), top_talkers=3)
    assert [t.address for t in summary.top_talkers] == [CLIENT, "10.0.1.2", "10.0.1.4"]
    assert summary.top_talkers[0].bytes == sum(len(frame) for frame in frames)


@pytest.mark.parametrize(
    ("ip", "client", "server", "resolver"),
    [(ipv4, CLIENT, SERVER, "10.0.1.9"), (ipv6, "fd00::1", "fd00::2", "fd00::9")],
    ids=["ipv4", "ipv6"],
)
def test_top_talkers_count_every_tcp_segment_of_both_directions_and_of_a_reopened_connection(
    ip: Callable[..., bytes], client: str, server: str, resolver: str
) -> None:
    data = b"d" * 400
    tcp_frames = [
        ethernet(ip(segment, src, dst))
        for segment, src, dst in [
            (tcp(1000, 0, SYN), client, server),
            (tcp(5000, 1001, SYN | ACK, sport=443, dport=40000), server, client),
            (tcp(1001, 5001, ACK, data), client, server),
            (tcp(5001, 1401, ACK, sport=443, dport=40000), server, client),
            (tcp(9000, 0, SYN), client, server),  # a new ISN on the same ports: a new conversation
            (tcp(9001, 0, ACK, data), client, server),
        ]
    ]
    query = ethernet(ip(udp(dns(1)), client, resolver))
    frames = [*tcp_frames, query]
    summary = summarize(frames)
    talkers = {t.address: (t.bytes, t.packets) for t in summary.top_talkers}
    tcp_bytes = sum(map(len, tcp_frames))
    assert summary.tcp.connections == 2
    assert talkers == {
        client: (tcp_bytes + len(query), 7),
        server: (tcp_bytes, 6),
        resolver: (len(query), 1),
    }


def test_an_empty_file_is_a_partial_summary_with_no_times() -> None:
    summary = analyze(io.BytesIO(b""))
    assert (summary.partial, summary.partial_reason, summary.packets, summary.first_ts) == (
        True,
        "empty file",
        0,
        None,
    )
    assert [f.kind for f in summary.findings] == ["capture.partial"]


def test_cli_json_prints_exactly_the_summary(capture: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", str(capture), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == analyze_file(capture).model_dump(mode="json")


def test_cli_text_shows_the_findings_with_names_from_a_context_file(capture: Path, tmp_path: Path) -> None:
    context = tmp_path / "context.json"
    context.write_text(json.dumps({SERVER: "shop/api-7f9c"}))
    result = CliRunner().invoke(
        app, ["analyze", str(capture), "--context", str(context)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    assert f"3 SYNs to shop/api-7f9c ({SERVER}):443 never answered" in result.stdout


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", '{"10.0.0.1": 5}'], ids=["not-json", "list", "non-string"]
)
def test_cli_rejects_a_bad_context_file_naming_the_option(
    capture: Path, tmp_path: Path, content: str
) -> None:
    context = tmp_path / "context.json"
    context.write_text(content)
    result = CliRunner().invoke(app, ["analyze", str(capture), "--context", str(context)])
    assert result.exit_code == 2
    assert "--context" in result.output


def test_cli_refuses_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "missing.pcap")])
    assert result.exit_code == 2
