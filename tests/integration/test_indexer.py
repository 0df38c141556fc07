"""Every pcap uploaded under captures/ is indexed once, with counts that agree with tshark's tools."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import boto3
import pytest
import zstandard

from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.burst import first_packets
from localcloud.router import Router
from tests.events import load_event
from tests.fixtures.sessions import manual_session

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
CAPTURE_ID = "cap-20261125T031200Z-0a1b2c3d"
NODE = "ip-192-168-12-34.us-west-2.compute.internal"
PREFIX = f"captures/shop-prod/{CAPTURE_ID}/{NODE}/"

pytestmark = pytest.mark.root  # capinfos (the oracle) is installed by the set-up, which needs root


def _capinfos_packets(path: Path) -> int:
    out = subprocess.run(
        ["capinfos", "-M", "-c", str(path)], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Number of packets:\s+(\d+)", out)
    assert match is not None, out
    return int(match.group(1))


@pytest.fixture
def store(settings: Settings) -> CaptureStore:
    store = CaptureStore(settings.capture_table)
    store.create_session(manual_session(CAPTURE_ID, "test"))
    return store


def _upload(settings: Settings, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(
        Bucket=settings.capture_bucket, Key=key, Body=body, Metadata={"instance-id": "i-0a1b2c3d4e5f60718"}
    )


@pytest.mark.parametrize(
    ("fixture", "suffix", "compress"),
    [
        pytest.param(
            "any-nano-head.pcap", ".pcap.zst", zstandard.ZstdCompressor().compress, id="zstd-sll2-nanosecond"
        ),
        pytest.param("server-head.pcapng", ".pcapng.gz", gzip.compress, id="gzip-pcapng"),
        pytest.param("any-nano-head.pcap", ".pcap", bytes, id="plain"),
    ],
)
def test_an_uploaded_pcap_is_indexed_with_the_packets_tshark_counts(
    router: Router, settings: Settings, store: CaptureStore, fixture: str, suffix: str, compress: object
) -> None:
    source = CAPTURES / fixture
    key = f"{PREFIX}20261125T031200Z-00001{suffix}"
    _upload(settings, key, compress(source.read_bytes()))  # type: ignore[operator]

    [invocation] = router.drain()

    assert invocation.function == "IndexerFunction"
    assert invocation.error is None, invocation.error
    [item] = store.files_of_capture(CAPTURE_ID)
    assert item.s3_key == key
    assert item.packets == _capinfos_packets(source)
    assert item.instance_id == "i-0a1b2c3d4e5f60718"
    assert not item.partial
    session = store.get_session(CAPTURE_ID)
    assert session is not None
    assert (session.totals.files, session.totals.packets) == (1, item.packets)


def test_the_same_object_event_twice_leaves_one_item_and_exact_totals(
    router: Router, settings: Settings, store: CaptureStore
) -> None:
    _upload(settings, f"{PREFIX}a.pcap", (CAPTURES / "any-nano-head.pcap").read_bytes())
    [first] = router.drain()

    again = router.invoke("IndexerFunction", first.event)

    assert again.result["files"][0]["status"] == "duplicate"
    session = store.get_session(CAPTURE_ID)
    assert session is not None
    assert session.totals.files == 1
    assert session.totals.packets == _capinfos_packets(CAPTURES / "any-nano-head.pcap")


def test_a_pcap_written_again_under_its_key_is_indexed_as_its_latest_version_counted_once(
    router: Router, settings: Settings, store: CaptureStore
) -> None:
    key = f"{PREFIX}20261125T031200Z-00003.pcap"
    _upload(settings, key, first_packets(3))  # the recorder's copy of a file tcpdump still had open
    [first] = router.drain()
    _upload(settings, key, (CAPTURES / "any-nano-head.pcap").read_bytes())  # its longer copy, same key
    [second] = router.drain()

    assert [i.result["files"][0]["status"] for i in (first, second)] == ["indexed", "replaced"]
    [item] = store.files_of_capture(CAPTURE_ID)
    assert item.packets == _capinfos_packets(CAPTURES / "any-nano-head.pcap")
    assert item.etag == second.event["detail"]["object"]["etag"]
    session = store.get_session(CAPTURE_ID)
    assert session is not None
    assert (session.totals.files, session.totals.packets, session.totals.bytes) == (
        1,
        item.packets,
        item.bytes,
    )

    older = router.invoke("IndexerFunction", first.event)  # S3 holds the later version: not the one announced
    again = router.invoke("IndexerFunction", second.event)

    assert older.result["files"][0]["status"] == "superseded"
    assert again.result["files"][0]["status"] == "duplicate"
    assert store.files_of_capture(CAPTURE_ID) == [item]
    unchanged = store.get_session(CAPTURE_ID)
    assert unchanged is not None
    assert unchanged.totals == session.totals


def test_a_truncated_pcap_is_indexed_as_partial_with_the_reason(
    router: Router, settings: Settings, store: CaptureStore
) -> None:
    whole = (CAPTURES / "any-nano-head.pcap").read_bytes()
    _upload(settings, f"{PREFIX}cut.pcap", whole[: len(whole) // 2 + 7])

    [invocation] = router.drain()

    assert invocation.error is None
    [item] = store.files_of_capture(CAPTURE_ID)
    assert item.partial
    assert item.partial_reason


def test_objects_outside_captures_reach_no_function(router: Router, settings: Settings) -> None:
    _upload(settings, "exports/report.pcap", (CAPTURES / "any-nano-head.pcap").read_bytes())

    assert router.drain() == []


@pytest.mark.parametrize("key", [f"{PREFIX}manifest.json", "captures/shop-prod/not-a-capture/n/x.pcap"])
def test_keys_outside_the_layout_are_ignored_with_a_reason(
    router: Router, settings: Settings, store: CaptureStore, key: str
) -> None:
    _upload(settings, key, b"{}")

    [invocation] = router.drain()

    assert invocation.result["files"][0]["status"] == "ignored"
    assert store.files_of_capture(CAPTURE_ID) == []


def test_a_classic_s3_notification_names_the_same_object_as_the_eventbridge_event(
    router: Router, settings: Settings, store: CaptureStore
) -> None:
    key = f"{PREFIX}20261125T031200Z-00002.pcap"
    _upload(settings, key, (CAPTURES / "any-nano-head.pcap").read_bytes())
    [bridged] = router.drain()
    event = load_event("s3-object-created-notification")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = settings.capture_bucket
    announced = bridged.event["detail"]["object"]
    record["s3"]["object"].update(key=key, eTag=announced["etag"], sequencer=announced["sequencer"])

    invocation = router.invoke("IndexerFunction", event)

    assert invocation.result["files"][0] == {
        "key": key,
        "status": "duplicate",
        "message": "indexed already",
        "packets": _capinfos_packets(CAPTURES / "any-nano-head.pcap"),
    }
