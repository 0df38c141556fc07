"""The upload ledger and the manifest's verdict: sequence numbers in creation order, losses named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eks_capture.captures.reaper import dropped_packets
from eks_capture_agent.identity import Identity
from eks_capture_agent.ledger import DroppedFile, Ledger, UploadedFile
from eks_capture_agent.manifest import UploadTarget, build_manifest
from eks_capture_agent.spool import Spool, parse_pcap_name

IDENTITY = Identity("cap-20261125T120000Z-0a1b2c3d", "demo", "node-1", None)
TARGET = UploadTarget("bucket", "p/", "zstd", 3, 1000)


def _names(*filenames: str) -> list:  # type: ignore[type-arg]
    return [parse_pcap_name(name) for name in filenames]


def test_sequence_numbers_follow_creation_order_and_never_change() -> None:
    ledger = Ledger()
    ledger.number(_names("20261125T124420Z.pcap10", "20261125T124420Z.pcap", "20261125T124420Z.pcap9"))
    ledger.number(_names("20261125T124421Z.pcap", "20261125T124420Z.pcap"))
    assert ledger.seqs == {
        "20261125T124420Z.pcap": 0,
        "20261125T124420Z.pcap9": 1,
        "20261125T124420Z.pcap10": 2,
        "20261125T124421Z.pcap": 3,
    }


def test_a_repeated_error_is_counted_not_repeated() -> None:
    ledger = Ledger()
    for at in ("t1", "t2", "t3"):
        ledger.note_error("a.pcap", "connection refused", at)
    ledger.note_error("a.pcap", "timeout", "t4")
    assert [(e["message"], e["count"], e["first_at"], e["last_at"]) for e in ledger.errors] == [
        ("connection refused", 3, "t1", "t3"),
        ("timeout", 1, "t4", "t4"),
    ]


def test_a_restarted_uploader_reads_back_what_it_had_done(tmp_path: Path) -> None:
    ledger = Ledger(peak_spool_bytes=123)
    ledger.number(_names("20261125T124420Z.pcap", "20261125T124420Z.pcap1"))
    ledger.uploaded.append(UploadedFile("20261125T124420Z.pcap", "k", 0, 10, 5, 2, "a", "b", 0, "t"))
    ledger.dropped.append(DroppedFile("20261125T124420Z.pcap1", 1, 10, "t", "budget"))
    ledger.note_error("x", "y", "t")
    ledger.save(Spool(tmp_path))
    assert Ledger.load(Spool(tmp_path)) == ledger


def _manifest(ledger: Ledger, marker: dict | None, left: list[str], left_packets: int = 0) -> dict:  # type: ignore[type-arg]
    return build_manifest(IDENTITY, TARGET, {"settings": {}}, marker, ledger, left, left_packets, "now")


def test_a_whole_capture_is_complete_and_totals_its_files() -> None:
    ledger = Ledger()
    ledger.uploaded += [
        UploadedFile("b", "k1", 1, 300, 30, 7, None, None, 0, "t"),
        UploadedFile("a", "k0", 0, 200, 20, 5, None, None, 0, "t"),
    ]
    manifest = _manifest(ledger, {"status": "completed"}, [])
    assert manifest["status"] == "complete"
    assert manifest["incomplete_reasons"] == []
    assert [item["seq"] for item in manifest["files"]] == [0, 1]
    assert manifest["totals"] == {"files": 2, "packets": 12, "bytes": 500, "stored_bytes": 50}


def test_drops_leftovers_and_a_missing_marker_each_make_it_incomplete_with_a_reason() -> None:
    ledger = Ledger()
    ledger.dropped.append(DroppedFile("a", 0, 4096, "t", "budget"))
    manifest = _manifest(ledger, None, ["20261125T124420Z.pcap3"], left_packets=40)
    assert manifest["status"] == "incomplete"
    reasons = " | ".join(manifest["incomplete_reasons"])
    assert "completion marker" in reasons
    assert "1 file(s), 4096 bytes, dropped" in reasons
    assert "1 file(s), 40 packets, still in the spool" in reasons
    assert manifest["dropped"]["files"] == 1
    assert manifest["not_uploaded"] == ["20261125T124420Z.pcap3"]
    assert manifest["dropped"]["not_uploaded_packets"] == 40
    assert manifest["dropped"]["packets"] == 40, "the packets left in the spool are lost to this manifest"
    assert dropped_packets(manifest) == 40


def test_the_sweep_reads_a_nodes_loss_in_packets_from_the_agents_own_manifest() -> None:
    ledger = Ledger()
    ledger.dropped += [DroppedFile("a", 0, 4096, "t", "budget", 120), DroppedFile("b", 1, 10, "t", "budget")]
    marker = {"status": "completed", "tcpdump": {"counters": {"captured": 900, "dropped_by_kernel": 7}}}
    manifest = _manifest(ledger, marker, [])
    assert manifest["dropped"]["packets"] == 120
    assert dropped_packets(manifest) == 127


UNWRITTEN_CASES = {
    # marker: (unwritten packets, words of the reason or None)
    "tcpdump counted one packet more than reached the files": (
        {"status": "completed", "tcpdump": {"counters": {"captured": 900}}, "spool": {"packets": 899}},
        (
            1,
            "1 packet(s) tcpdump counted as captured never reached a file: tcpdump was stopped while",
        ),
    ),
    "a failed spool names its error": (
        {
            "status": "failed",
            "tcpdump": {"counters": {"captured": 900}, "error": "writing the spool failed: [Errno 28]"},
            "spool": {"packets": 850},
        },
        (50, "50 packet(s) tcpdump counted as captured never reached a file: the capture failed: writing"),
    ),
    "every counted packet is in a file": (
        {"status": "completed", "tcpdump": {"counters": {"captured": 900}}, "spool": {"packets": 900}},
        (0, None),
    ),
    "tcpdump printed no counters (killed)": (
        {"status": "failed", "tcpdump": {"counters": {"captured": None}}, "spool": {"packets": 10}},
        (0, None),
    ),
    "an agent that did not count its files' packets": (
        {"status": "completed", "tcpdump": {"counters": {"captured": 900}}, "spool": {"files": 3}},
        (0, None),
    ),
}


@pytest.mark.parametrize(("marker", "expected"), UNWRITTEN_CASES.values(), ids=UNWRITTEN_CASES.keys())
def test_packets_tcpdump_counted_but_never_wrote_are_dropped_with_a_reason(
    marker: dict[str, Any], expected: tuple[int, str | None]
) -> None:
    unwritten, words = expected
    ledger = Ledger()
    ledger.dropped.append(DroppedFile("a", 0, 4096, "t", "budget", 120))
    manifest = _manifest(ledger, marker, [])
    assert manifest["dropped"]["unwritten_packets"] == unwritten
    assert manifest["dropped"]["packets"] == 120 + unwritten
    assert dropped_packets(manifest) == 120 + unwritten  # what the sweep puts in the session's totals
    said = [reason for reason in manifest["incomplete_reasons"] if "never reached a file" in reason]
    if words is None:
        assert said == []
    else:
        assert len(said) == 1, said
        assert said[0].startswith(words)
