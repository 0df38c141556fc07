"""A file the budget keeper drops between failed upload attempts is counted once: the attempt's PUT may have
reached S3 with its answer cut (an outage that closes connections mid-request), so the file is uploaded if
S3 holds its object and dropped if not, never both. The interleaving is scripted step by step: the
uploader's bookkeeping around a failed attempt, the keeper's check, then S3's answer for the key."""

from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools import Logger

from eks_capture_agent.identity import Identity
from eks_capture_agent.keeper import BudgetKeeper
from eks_capture_agent.ledger import DroppedFile, Ledger, recovered_upload
from eks_capture_agent.manifest import UploadTarget, build_manifest
from eks_capture_agent.spool import Spool
from tests.fixtures.packets import Packet, pcap

IDENTITY = Identity("cap-20261125T120000Z-0a1b2c3d", "demo", "node-1", None)
TARGET = UploadTarget("bucket", "p/", "zstd", 3, 1000)
CLOSED, OPEN = "20261125T124420Z.pcap", "20261125T124420Z.pcap1"
KEY = "p/20261125T124420Z-00000.pcap.zst"
PACKETS = 3
#: What objects.pcap_metadata wrote on the object the attempt left in S3.
METADATA = {"seq": "0", "packets": str(PACKETS), "first-packet": "a", "last-packet": "b"}


def _spool_with_a_failed_attempt(tmp_path: Path, attempted: bool) -> tuple[Spool, Ledger]:
    """A closed file of PACKETS packets whose upload was (or was not) tried and failed, and the open file."""
    spool = Spool(tmp_path)
    (tmp_path / CLOSED).write_bytes(pcap([Packet(i * 1000, b"\0" * 60) for i in range(PACKETS)]))
    (tmp_path / OPEN).write_bytes(pcap([]))
    ledger = Ledger()
    ledger.number(spool.pcap_names())
    if attempted:  # the uploader, before put_file; the attempt then failed, so the file is not in flight
        ledger.attempted[CLOSED] = KEY
    return spool, ledger


def _dropped_by_the_keeper(spool: Spool, ledger: Ledger) -> DroppedFile:
    BudgetKeeper(spool, budget_bytes=1, ledger=ledger, logger=Logger(service="test")).enforce()
    assert not (spool.root / CLOSED).exists()
    [dropped] = ledger.dropped
    return dropped


def _counts(ledger: Ledger) -> tuple[list[str], list[str], int, int]:
    """Uploaded files, dropped files, packets in S3, packets dropped, as the manifest states them."""
    manifest = build_manifest(IDENTITY, TARGET, {"settings": {}}, None, ledger, [], 0, "now")
    return (
        [item["name"] for item in manifest["files"]],
        [item["name"] for item in manifest["dropped"]["items"]],
        manifest["totals"]["packets"],
        manifest["dropped"]["packets"],
    )


def test_a_dropped_file_whose_failed_attempt_reached_s3_counts_as_uploaded_only(tmp_path: Path) -> None:
    spool, ledger = _spool_with_a_failed_attempt(tmp_path, attempted=True)
    dropped = _dropped_by_the_keeper(spool, ledger)
    assert (dropped.key, dropped.packets, ledger.attempted) == (KEY, PACKETS, {})
    assert ledger.unsettled() == [dropped]

    ledger.settle(dropped, recovered_upload(dropped, METADATA, 77, "t"))  # S3 holds the object

    assert _counts(ledger) == ([CLOSED], [], PACKETS, 0)
    assert ledger.uploaded[0].key == KEY
    assert ledger.unsettled() == []


def test_a_dropped_file_whose_failed_attempt_never_reached_s3_counts_as_dropped_only(tmp_path: Path) -> None:
    spool, ledger = _spool_with_a_failed_attempt(tmp_path, attempted=True)
    dropped = _dropped_by_the_keeper(spool, ledger)

    ledger.settle(dropped, None)  # S3: 404

    assert _counts(ledger) == ([], [CLOSED], 0, PACKETS)
    assert ledger.unsettled() == []


def test_a_dropped_file_never_tried_leaves_nothing_to_ask_s3(tmp_path: Path) -> None:
    spool, ledger = _spool_with_a_failed_attempt(tmp_path, attempted=False)
    dropped = _dropped_by_the_keeper(spool, ledger)
    assert dropped.key is None
    assert ledger.unsettled() == []
    assert _counts(ledger) == ([], [CLOSED], 0, PACKETS)


def test_a_restarted_uploader_still_asks_s3_about_a_file_dropped_after_an_attempt(tmp_path: Path) -> None:
    spool, ledger = _spool_with_a_failed_attempt(tmp_path, attempted=True)
    ledger.attempted[OPEN] = "p/other.pcap.zst"
    dropped = _dropped_by_the_keeper(spool, ledger)
    ledger.save(spool)
    restarted = Ledger.load(spool)
    assert restarted == ledger
    assert restarted.unsettled() == [dropped]


def test_the_keeper_numbers_only_closed_files_so_one_the_capture_role_takes_away_empty_takes_no_seq(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path)
    (tmp_path / CLOSED).write_bytes(pcap([Packet(i * 1000, b"\0" * 60) for i in range(PACKETS)]))
    (tmp_path / OPEN).write_bytes(b"")  # the next file, held empty until the spool has room
    ledger = Ledger()
    dropped = _dropped_by_the_keeper(spool, ledger)
    (tmp_path / OPEN).unlink()  # no room by the capture's stop: taken away unwritten
    assert (dropped.name, dropped.seq) == (CLOSED, 0)
    assert ledger.seqs == {CLOSED: 0}
