"""tcpdump's rotated file names: which files exist, in what order, and which are closed."""

from __future__ import annotations

from calendar import timegm
from pathlib import Path

import pytest

from eks_capture_agent.spool import PcapName, Spool, closed_files, parse_pcap_name


@pytest.mark.parametrize(
    ("filename", "stamp", "counter"),
    [
        ("20261125T124420Z.pcap", "20261125T124420Z", 0),
        ("20261125T124420Z.pcap1", "20261125T124420Z", 1),
        ("20261125T124420Z.pcap37", "20261125T124420Z", 37),
    ],
)
def test_tcpdump_names_parse_into_period_and_counter(filename: str, stamp: str, counter: int) -> None:
    name = parse_pcap_name(filename)
    assert name == PcapName(stamp, counter)
    assert name.filename == filename


@pytest.mark.parametrize(
    "filename",
    ["capture-done.json", ".capture.json.tmp", "20261125T124420Z.pcap.zst", "2026-11-25.pcap", "x.pcap1"],
)
def test_files_tcpdump_did_not_write_are_not_pcaps(filename: str) -> None:
    assert parse_pcap_name(filename) is None


def test_size_rotations_sort_numerically_and_periods_by_time() -> None:
    created = [
        "20261125T124420Z.pcap",
        *(f"20261125T124420Z.pcap{n}" for n in range(1, 12)),
        "20261125T124422Z.pcap",
    ]
    parsed = [parse_pcap_name(filename) for filename in sorted(created)]  # lexical: pcap10 before pcap2
    assert [name.filename for name in sorted(item for item in parsed if item is not None)] == created


def test_the_period_start_is_the_utc_time_in_the_name() -> None:
    assert PcapName("20261125T124420Z", 3).period_start == timegm((2026, 11, 25, 12, 44, 20, 0, 0, 0))


@pytest.mark.parametrize(
    ("present", "done", "closed"),
    [
        ([], False, []),
        (["A.pcap"], False, []),
        (["A.pcap"], True, ["A.pcap"]),
        (["A.pcap", "A.pcap1", "B.pcap"], False, ["A.pcap", "A.pcap1"]),
        (["B.pcap", "A.pcap1", "A.pcap"], True, ["A.pcap", "A.pcap1", "B.pcap"]),
    ],
)
def test_every_file_but_the_newest_is_closed_until_the_capture_is_done(
    present: list[str], done: bool, closed: list[str]
) -> None:
    stamps = {"A": "20261125T124420Z", "B": "20261125T124421Z"}

    def name(short: str) -> PcapName:
        parsed = parse_pcap_name(stamps[short[0]] + short[1:])
        assert parsed is not None
        return parsed

    assert closed_files([name(item) for item in present], done) == [name(item) for item in closed]


def test_spool_documents_are_written_whole_and_read_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write_json("capture-done.json", {"status": "completed"})
    assert spool.read_json("capture-done.json") == {"status": "completed"}
    assert spool.read_json("missing.json") is None
    assert [entry.name for entry in tmp_path.iterdir()] == ["capture-done.json"]


def test_spool_usage_counts_allocated_bytes_of_the_directory_and_every_entry_as_the_kubelet_does(
    tmp_path: Path,
) -> None:
    (tmp_path / "20261125T124420Z.pcap").write_bytes(b"x" * 10_000)
    (tmp_path / "netstate-before.json").write_bytes(b"y" * 5_000)
    (tmp_path / ".upload-ledger.json.tmp").write_bytes(b"z" * 100)
    files = sum(path.stat().st_blocks * 512 for path in tmp_path.iterdir())
    directory = tmp_path.stat().st_blocks * 512
    usage = Spool(tmp_path).usage()
    assert usage.total == Spool(tmp_path).usage_bytes() == files + directory > files >= 15_100
    documents = usage.total - directory - (tmp_path / "20261125T124420Z.pcap").stat().st_blocks * 512
    assert usage.documents == documents >= 5_100
