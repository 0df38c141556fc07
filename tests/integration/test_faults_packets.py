"""Every packet tcpdump counted is in S3 or counted as dropped, under combined faults: the real agent (both
roles, tcpdump in a network namespace) loses S3 for a window while traffic fills a small spool budget,
and both roles get SIGTERM mid-capture. Packets in S3 are counted by capinfos; the index built from the
same objects must agree with them and with the manifest.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from eks_capture.captures import indexer
from eks_capture.captures.reaper import dropped_packets
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, Trigger
from localcloud.aws import MotoServer
from localcloud.burst import object_created
from localcloud.netns import TestNetwork
from localcloud.outages import PausableProxy
from tests.fixtures.agents import BUCKET, IDENTITY, finish, manifest, packets_in_s3, send_udp, start_agent
from tests.fixtures.aws import make_bucket

pytestmark = pytest.mark.root

BUDGET_BYTES = 4_000_000
PCAP_HEADER_BYTES = 24
#: Each record of the test traffic: record header, Ethernet, IPv4, UDP and the sender's 1000 bytes.
RECORD_BYTES = 16 + 14 + 20 + 8 + 1000


@pytest.fixture
def spool() -> Iterator[Path]:
    """A pod's emptyDir (mode 0777) both roles reach, the upload role as uid 65532."""
    directory = Path(tempfile.mkdtemp(prefix="fault-spool-", dir="/tmp"))
    directory.chmod(0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def packets_of(file_bytes: int) -> int:
    """Packets in a pcap of the test traffic, from its size alone (every record is alike)."""
    assert (file_bytes - PCAP_HEADER_BYTES) % RECORD_BYTES == 0, file_bytes
    return (file_bytes - PCAP_HEADER_BYTES) // RECORD_BYTES


def test_after_an_s3_outage_a_full_budget_and_sigterm_every_counted_packet_is_in_s3_or_dropped(
    network: TestNetwork, moto: MotoServer, settings: Settings, tmp_path: Path, spool: Path
) -> None:
    s3 = boto3.client("s3")
    make_bucket(BUCKET)
    proxy = PausableProxy(moto.port)
    proxy.resume()
    agent = start_agent(
        network["server"],
        spool,
        tmp_path,
        duration=120,
        endpoint_url=proxy.endpoint_url,
        budget_bytes=BUDGET_BYTES,
    )
    agent.wait_until_capturing()
    sender = send_udp(network, count=200_000, rate=4000)  # far more than the test waits for: cut by SIGTERM
    time.sleep(1.0)
    proxy.pause()  # the outage: files pile up past the budget
    time.sleep(3.0)
    proxy.resume()
    time.sleep(1.0)
    agent.capture.send_signal(signal.SIGTERM)  # mid-capture: the sender is still sending
    assert agent.upload is not None
    agent.upload.send_signal(signal.SIGTERM)
    finish(agent.capture, timeout=20)
    finish(agent.upload, timeout=30)
    assert sender.poll() is None, "the traffic ended before the SIGTERM"
    sender.kill()
    sender.wait()
    proxy.pause()

    marker = agent.marker()
    assert marker["stop_reason"] == "signal"
    captured = marker["tcpdump"]["counters"]["captured"]
    written = manifest()
    in_s3 = packets_in_s3(tmp_path)
    assert sum(error["count"] for error in written["errors"]) >= 1, "the outage was never seen"
    assert written["dropped"]["files"] >= 1, "the budget never bit"
    for item in written["files"]:
        assert packets_of(item["bytes"]) == item["packets"]
    for item in written["dropped"]["items"]:
        assert item["packets"] == packets_of(item["bytes"])
    dropped = written["dropped"]["packets"]
    kernel = marker["tcpdump"]["counters"]["dropped_by_kernel"] or 0
    assert dropped_packets(written) == dropped + kernel  # what the sweep puts in the session's totals
    assert written["not_uploaded"] == []
    assert sum(in_s3.values()) + dropped == captured
    assert sum(in_s3.values()) == written["totals"]["packets"]

    store = CaptureStore(settings.capture_table)
    started = datetime.now(UTC)
    capture_id = IDENTITY["CAPTURE_ID"]
    store.create_session(
        CaptureSession(
            capture_id=capture_id,
            cluster=IDENTITY["CLUSTER_NAME"],
            created_at=started,
            expires_at=started + timedelta(minutes=2),
            duration_seconds=120,
            trigger=Trigger(kind="manual", reason="packet accounting", event_id="e"),
        )
    )
    for key, _count in sorted(in_s3.items()) * 2:  # every object event delivered twice
        stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        indexer.handle(object_created(BUCKET, key, stored), store, s3)
    session = store.get_session(capture_id)
    assert session is not None
    assert (session.totals.files, session.totals.packets) == (len(in_s3), sum(in_s3.values()))
    assert sorted(f.packets for f in store.files_of_capture(capture_id)) == sorted(in_s3.values())
