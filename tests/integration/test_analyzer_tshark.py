"""The analyzer against tshark on real faulty traffic captured by tcpdump and dumpcap in the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from eks_capture.pcap import CaptureSummary, analyze_file
from tests.fixtures import fault_agents
from tests.fixtures.traffic import Captures

pytestmark = pytest.mark.root

FIELDS = [
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.zero_window",
    "tcp.flags.reset",
    "tcp.stream",
    "tcp.completeness",
    "dns.flags.response",
    "dns.flags.rcode",
    "dns.response_in",
    "icmp.type",
    "icmp.code",
]
# tcp.completeness bits (Wireshark 4.0): SYN, SYN-ACK, RST.
SYN, SYNACK, RST = 1, 2, 32
#: Each capture and the file tshark reads for it (tshark is given the uncompressed original).
CAPTURES = {
    "ethernet.pcap": "ethernet.pcap",
    "any-nano.pcap": "any-nano.pcap",
    "server.pcapng": "server.pcapng",
    "ethernet.pcap.gz": "ethernet.pcap",
    "server.pcapng.zst": "server.pcapng",
}


def tshark_counts(path: Path) -> dict[str, int]:
    """Frames matching each display filter, from one two-pass tshark run (``-2``, for dns.response_in)."""
    command = ["tshark", "-r", str(path), "-2", "-T", "fields", "-E", "separator=/t"]
    for name in FIELDS:
        command += ["-e", name]
    lines = subprocess.run(command, capture_output=True, text=True, check=False).stdout.splitlines()
    counts = dict.fromkeys(
        ["packets", "retransmissions", "fast_retransmissions", "spurious_retransmissions", "out_of_order",
         "duplicate_acks", "zero_windows", "resets", "queries", "nxdomain", "servfail", "dns_unanswered",
         "unreachable", "frag_needed"],
        0,
    )  # fmt: skip
    completeness: dict[str, int] = {}
    for line in lines:
        frame = {
            name: value.split(",") if value else []
            for name, value in zip(FIELDS, line.split("\t"), strict=True)
        }
        counts["packets"] += 1
        counts["retransmissions"] += bool(frame["tcp.analysis.retransmission"])
        counts["fast_retransmissions"] += bool(frame["tcp.analysis.fast_retransmission"])
        counts["spurious_retransmissions"] += bool(frame["tcp.analysis.spurious_retransmission"])
        counts["out_of_order"] += bool(frame["tcp.analysis.out_of_order"])
        counts["duplicate_acks"] += bool(frame["tcp.analysis.duplicate_ack"])
        counts["zero_windows"] += bool(frame["tcp.analysis.zero_window"])
        counts["resets"] += "1" in frame["tcp.flags.reset"]
        counts["queries"] += "0" in frame["dns.flags.response"]
        counts["nxdomain"] += "3" in frame["dns.flags.rcode"]
        counts["servfail"] += "2" in frame["dns.flags.rcode"]
        counts["dns_unanswered"] += "0" in frame["dns.flags.response"] and not frame["dns.response_in"]
        counts["unreachable"] += "3" in frame["icmp.type"]
        counts["frag_needed"] += "3" in frame["icmp.type"] and "4" in frame["icmp.code"]
        if frame["tcp.stream"]:
            completeness[frame["tcp.stream"][0]] = int(frame["tcp.completeness"][0])
    counts["connections"] = len(completeness)
    handshakes = [value & (SYN | SYNACK | RST) for value in completeness.values()]
    counts["unanswered_syns"] = handshakes.count(SYN)
    counts["refused"] = handshakes.count(SYN | RST)
    return counts


def our_counts(summary: CaptureSummary) -> dict[str, int]:
    tcp, dns, icmp = summary.tcp, summary.dns, summary.icmp
    return {
        "packets": summary.packets,
        "retransmissions": tcp.retransmissions,
        "fast_retransmissions": tcp.fast_retransmissions,
        "spurious_retransmissions": tcp.spurious_retransmissions,
        "out_of_order": tcp.out_of_order,
        "duplicate_acks": tcp.duplicate_acks,
        "zero_windows": tcp.zero_windows,
        "resets": tcp.resets,
        "queries": dns.queries,
        "nxdomain": dns.nxdomain,
        "servfail": dns.servfail,
        "dns_unanswered": dns.unanswered,
        "unreachable": icmp.unreachable,
        "frag_needed": icmp.frag_needed,
        "connections": tcp.connections,
        "unanswered_syns": tcp.unanswered_syns,
        "refused": tcp.refused,
    }


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_every_count_equals_tsharks_on_the_same_file(faulty_captures: Captures, name: str) -> None:
    summary = analyze_file(faulty_captures[name])
    assert not summary.partial
    assert our_counts(summary) == tshark_counts(faulty_captures[CAPTURES[name]])


@pytest.mark.parametrize("name", ["ethernet.pcap", "any-nano.pcap"])
def test_the_client_captures_contain_every_kind_of_fault(faulty_captures: Captures, name: str) -> None:
    counts = tshark_counts(faulty_captures[name])
    kinds = ["retransmissions", "zero_windows", "resets", "nxdomain", "servfail", "dns_unanswered",
             "unreachable", "frag_needed", "unanswered_syns", "refused"]  # fmt: skip
    assert [kind for kind in kinds if counts[kind] == 0] == []


@pytest.mark.parametrize(
    ("name", "file_format", "link_types"),
    [
        ("ethernet.pcap", "pcap", ["ethernet"]),
        ("any-nano.pcap", "pcap", ["linux-sll2"]),
        ("server.pcapng", "pcapng", ["ethernet"]),
    ],
)
def test_format_and_link_type_are_those_tcpdump_and_dumpcap_wrote(
    faulty_captures: Captures, name: str, file_format: str, link_types: list[str]
) -> None:
    summary = analyze_file(faulty_captures[name])
    assert (summary.format, summary.link_types) == (file_format, link_types)


def _to_the_microsecond(seconds: str) -> datetime:
    """capinfos's epoch time (to the nanosecond) cut to the microsecond that a datetime holds."""
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(Decimal(seconds) * 1_000_000))


def test_first_and_last_packet_times_match_capinfos(faulty_captures: Captures) -> None:
    path = faulty_captures["any-nano.pcap"]
    table = subprocess.run(
        ["capinfos", "-T", "-a", "-e", "-S", str(path)], capture_output=True, text=True
    ).stdout
    first, last = table.splitlines()[1].split("\t")[1:3]
    summary = analyze_file(path)
    assert (summary.first_ts, summary.last_ts) == (_to_the_microsecond(first), _to_the_microsecond(last))


def test_a_capture_cut_mid_packet_is_partial_and_agrees_with_tshark_up_to_the_cut(
    faulty_captures: Captures, tmp_path: Path
) -> None:
    whole = faulty_captures["ethernet.pcap"].read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) * 3 // 5])
    summary = analyze_file(cut)
    assert summary.partial
    assert summary.partial_reason is not None
    assert "truncated" in summary.partial_reason
    assert our_counts(summary) == tshark_counts(cut)


def test_findings_name_the_endpoints_from_the_context(faulty_captures: Captures) -> None:
    server = "10.77.0.3"
    summary = analyze_file(faulty_captures["ethernet.pcap"], context={server: "shop/api-7f9c"})
    messages = [finding.message for finding in summary.findings]
    handshakes = fault_agents.BLACKHOLE_SHORT + fault_agents.BLACKHOLE_LONG
    syn_line = f"{handshakes} SYNs to shop/api-7f9c ({server}):{fault_agents.BLACKHOLE_PORT} never answered"
    servfail_line = f"DNS SERVFAIL from shop/api-7f9c ({server}) for {fault_agents.DNS_PLAN['fail']} queries"
    assert [m for m in messages if m.startswith(syn_line)] != []
    assert servfail_line in messages
    assert summary.findings[0].severity == "critical"
    assert {talker.name for talker in summary.top_talkers if talker.address == server} == {"shop/api-7f9c"}


def test_cli_json_is_the_summary_the_indexer_stores(faulty_captures: Captures) -> None:
    path = faulty_captures["server.pcapng.zst"]
    command = [str(Path(sys.executable).with_name("eks-capture")), "analyze", str(path), "--json"]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert json.loads(printed) == analyze_file(path).model_dump(mode="json")
