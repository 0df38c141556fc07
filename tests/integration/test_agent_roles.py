"""The capture agent's two roles as real processes: tcpdump in a network namespace, uploads to moto over HTTP.

Both roles run under the image's capability model: ``capture`` as root bounded to NET_RAW and SETGID
with no privilege escalation, ``upload`` as uid 65532 with no capabilities, sharing a world-writable
spool like a pod's emptyDir. Packets in S3 are counted by capinfos (Wireshark), not by the agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eks_capture.captures.reaper import dropped_packets
from eks_capture_agent.pcapscan import scan_pcap
from eks_capture_agent.rotation import Rotation, minimum_budget
from eks_capture_agent.spool import COMPLETION_MARKER, PcapName, Spool, closed_files
from localcloud.aws import MotoServer
from localcloud.netns import TestNetwork
from localcloud.outages import PausableProxy
from tests.fixtures.agents import (
    BUCKET,
    CAPTURE_CAPS,
    IDENTITY,
    PORT,
    PREFIX,
    UsageSampler,
    finish,
    manifest,
    packets_in_s3,
    s3_objects,
    send_udp,
    start_agent,
    start_upload,
)
from tests.fixtures.aws import make_bucket
from tests.fixtures.waiting import eventually, wait_for_log_line

pytestmark = pytest.mark.root

FLOOD = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(1000):
        sock.sendto(b"x" * 1000, ("127.0.0.1", int(sys.argv[2])))
"""


@pytest.fixture
def spool() -> Iterator[Path]:
    """A directory like a pod's emptyDir (mode 0777) that uid 65532 can reach."""
    directory = Path(tempfile.mkdtemp(prefix="agent-spool-", dir="/tmp"))
    directory.chmod(0o777)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    return make_bucket(BUCKET)


def test_every_packet_tcpdump_captured_is_in_s3_with_metadata_and_manifest(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    agent = start_agent(network["server"], spool, tmp_path, duration=5)
    agent.wait_until_capturing()
    sender = send_udp(network, count=6000, rate=3000)
    assert sender.wait(timeout=30) == 0
    assert finish(agent.capture) == 0, agent.log("capture")
    assert finish(agent.upload) == 0, agent.log("upload")

    captured = agent.marker()["tcpdump"]["counters"]["captured"]
    per_object = packets_in_s3(tmp_path)
    assert captured == 6000
    assert sum(per_object.values()) == captured
    assert len(per_object) >= 5, "1 MB rotation should have split ~6 MB into several objects"
    objects = s3_objects()
    seqs = sorted(int(objects[key]["Metadata"]["seq"]) for key in per_object)
    assert seqs == list(range(len(seqs)))
    for key, count in per_object.items():
        metadata = objects[key]["Metadata"]
        assert metadata["capture-id"] == IDENTITY["CAPTURE_ID"]
        assert metadata["node"] == IDENTITY["NODE_NAME"]
        assert metadata["filter"] == f"udp port {PORT}"
        if count:
            assert metadata["first-packet"] <= metadata["last-packet"]
    assert f"{PREFIX}netstate-before.json" in objects
    assert f"{PREFIX}netstate-after.json" in objects
    written = manifest()
    assert written["status"] == "complete"
    assert written["totals"]["packets"] == captured
    assert written["capture"]["completion"]["tcpdump"]["counters"]["captured"] == captured
    assert not [entry.name for entry in os.scandir(spool) if ".pcap" in entry.name]


def test_sigterm_mid_capture_still_puts_every_captured_packet_in_s3(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    agent = start_agent(network["server"], spool, tmp_path, duration=120)
    agent.wait_until_capturing()
    sender = send_udp(network, count=60000, rate=3000)
    time.sleep(2.5)
    agent.capture.send_signal(signal.SIGTERM)
    assert agent.upload is not None
    agent.upload.send_signal(signal.SIGTERM)
    assert finish(agent.capture, timeout=20) == 0, agent.log("capture")
    assert finish(agent.upload, timeout=20) == 0, agent.log("upload")
    sender.kill()
    sender.wait()

    marker = agent.marker()
    assert marker["stop_reason"] == "signal"
    captured = marker["tcpdump"]["counters"]["captured"]
    assert captured > 3000
    assert sum(packets_in_s3(tmp_path).values()) == captured
    assert manifest()["status"] == "complete"


def test_an_s3_outage_delays_uploads_but_loses_nothing(
    network: TestNetwork, spool: Path, bucket: str, moto: MotoServer, tmp_path: Path
) -> None:
    proxy = PausableProxy(moto.port)
    proxy.resume()
    agent = start_agent(network["server"], spool, tmp_path, duration=6, endpoint_url=proxy.endpoint_url)
    agent.wait_until_capturing()
    proxy.pause()
    sender = send_udp(network, count=6000, rate=3000)
    assert sender.wait(timeout=30) == 0
    time.sleep(2.0)
    pcaps_waiting = [entry.name for entry in os.scandir(spool) if ".pcap" in entry.name]
    proxy.resume()
    assert finish(agent.capture) == 0, agent.log("capture")
    assert finish(agent.upload) == 0, agent.log("upload")
    proxy.pause()

    assert len(pcaps_waiting) >= 5, "files must have piled up during the outage"
    captured = agent.marker()["tcpdump"]["counters"]["captured"]
    assert captured == 6000
    assert sum(packets_in_s3(tmp_path).values()) == captured
    written = manifest()
    assert written["status"] == "complete"
    assert sum(error["count"] for error in written["errors"]) >= 1


def test_the_spool_stays_within_budget_and_reports_what_it_dropped(
    network: TestNetwork, spool: Path, bucket: str, moto: MotoServer, tmp_path: Path
) -> None:
    budget = 5_000_000
    proxy = PausableProxy(moto.port)
    agent = start_agent(
        network["server"], spool, tmp_path, duration=6, endpoint_url=proxy.endpoint_url, budget_bytes=budget
    )
    sampler = UsageSampler(spool)
    agent.wait_until_capturing()
    sender = send_udp(network, count=12000, rate=4000)
    assert sender.wait(timeout=30) == 0
    assert finish(agent.capture) == 0, agent.log("capture")
    proxy.resume()
    assert finish(agent.upload) == 4, agent.log("upload")
    peak = sampler.stop()
    proxy.pause()

    assert peak <= budget, f"spool reached {peak} bytes, budget {budget}"
    written = manifest()
    assert written["status"] == "incomplete"
    assert written["dropped"]["files"] >= 3
    assert written["dropped"]["bytes"] == sum(item["bytes"] for item in written["dropped"]["items"])
    uploaded_seqs = {item["seq"] for item in written["files"]}
    dropped_seqs = {item["seq"] for item in written["dropped"]["items"]}
    assert not uploaded_seqs & dropped_seqs
    assert uploaded_seqs | dropped_seqs == set(range(len(uploaded_seqs) + len(dropped_seqs)))
    captured = agent.marker()["tcpdump"]["counters"]["captured"]
    in_s3 = sum(packets_in_s3(tmp_path).values())
    assert in_s3 == written["totals"]["packets"]
    assert 0 < in_s3 < captured


def test_a_flood_into_a_small_budget_never_takes_the_spool_over_it_and_every_packet_is_accounted(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    budget = 6_000_000
    server = network["server"]
    agent = start_agent(server, spool, tmp_path, duration=4, budget_bytes=budget, interface="lo")
    sampler = UsageSampler(spool)
    agent.wait_until_capturing()
    flood = server.popen([sys.executable, "-c", FLOOD, "3", str(PORT)])  # unpaced, on the host's loopback
    assert flood.wait(timeout=30) == 0
    assert finish(agent.capture) == 0, agent.log("capture")
    finish(agent.upload)
    peak = sampler.stop()

    assert len(sampler.samples) >= 300, "sampled at least every 0.1 s over the capture"
    assert peak <= budget, f"spool reached {peak} bytes, budget {budget}"
    marker = agent.marker()
    counters = marker["tcpdump"]["counters"]
    written = manifest()
    held_back = marker["spool"]["waited_for_room_seconds"] > 0 or written["dropped"]["files"] > 0
    assert held_back, "the flood must outrun the uploads and fill the spool"
    in_s3 = sum(packets_in_s3(tmp_path).values())
    assert in_s3 == written["totals"]["packets"] > 0
    assert in_s3 + written["dropped"]["packets"] == counters["captured"]
    assert written["upload"]["peak_spool_bytes"] <= budget


def test_tcpdump_stopped_while_the_full_spool_holds_it_back_loses_one_counted_packet_and_the_manifest_says_so(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    budget = minimum_budget(Rotation(1, 1_000_000, 2048))
    server = network["server"]
    agent = start_agent(
        server, spool, tmp_path, duration=2, budget_bytes=budget, with_upload=False, interface="lo"
    )
    agent.wait_until_capturing()
    flood = server.popen([sys.executable, "-c", FLOOD, "4", str(PORT)])  # outlasts the capture
    # No uploader until tcpdump has been stopped: the spool stays full, tcpdump blocked writing to the agent.
    wait_for_log_line("packets captured", lambda: agent.log("capture"), agent.capture, timeout=30)
    upload = start_upload(spool, tmp_path, budget_bytes=budget)
    assert finish(agent.capture) == 0, agent.log("capture")
    assert finish(upload) == 4, agent.log("upload")
    assert flood.wait(timeout=30) == 0

    marker = agent.marker()
    captured = marker["tcpdump"]["counters"]["captured"]
    written = manifest()
    in_s3 = sum(packets_in_s3(tmp_path).values())
    assert marker["spool"]["waited_for_room_seconds"] > 0, "the full spool must hold tcpdump back at its stop"
    assert in_s3 == written["totals"]["packets"] > 0
    assert in_s3 + sum(item["packets"] for item in written["dropped"]["items"]) == marker["spool"]["packets"]
    assert captured == marker["spool"]["packets"] + 1, (
        "tcpdump discards the one write its SIGTERM cut, yet counts it"
    )
    assert written["status"] == "incomplete"
    assert written["dropped"]["unwritten_packets"] == 1
    assert any(
        "1 packet(s) tcpdump counted as captured never" in why for why in written["incomplete_reasons"]
    )
    assert in_s3 + written["dropped"]["packets"] == captured
    kernel = marker["tcpdump"]["counters"]["dropped_by_kernel"]
    assert dropped_packets(written) == kernel + written["dropped"]["packets"]  # the sweep's session totals


def test_a_bad_filter_fails_fast_with_tcpdumps_message(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    agent = start_agent(network["server"], spool, tmp_path, duration=60, capture_filter="udp port")
    assert finish(agent.capture, timeout=15) == 3
    assert time.monotonic() - started < 10
    assert finish(agent.upload, timeout=30) == 0, agent.log("upload")

    errors = [json.loads(line) for line in agent.log("capture").splitlines() if '"capture failed"' in line]
    assert errors, agent.log("capture")
    assert "syntax error" in errors[0]["error"]
    marker = agent.marker()
    assert marker["status"] == "failed"
    assert "syntax error" in marker["tcpdump"]["error"]
    assert manifest()["capture"]["completion"]["tcpdump"]["error"] == marker["tcpdump"]["error"]


def test_a_root_capture_without_setgid_fails_fast_naming_the_missing_capability(
    network: TestNetwork, spool: Path, bucket: str, tmp_path: Path
) -> None:
    only_net_raw = ["setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all", "--no-new-privs"]
    agent = start_agent(
        network["server"], spool, tmp_path, duration=60, with_upload=False, capture_caps=only_net_raw
    )
    assert finish(agent.capture, timeout=15) == 3
    marker = agent.marker()
    assert marker["stop_reason"] == "start-failed"
    assert "SETGID" in marker["tcpdump"]["error"]
    assert "NET_RAW" not in marker["tcpdump"]["error"].split(":")[0]


def test_a_restarted_record_container_takes_away_the_previous_runs_marker_before_its_first_file(
    network: TestNetwork, spool: Path, tmp_path: Path
) -> None:
    """The DaemonSet's ``record`` container restarts on the emptyDir its previous run left: with that run's
    marker still there, the file it writes would count as closed (uploaded once, half written)."""
    server = network["server"]
    argv = [
        *CAPTURE_CAPS, sys.executable, "-m", "eks_capture_agent", "record", "--spool", str(spool),
        "--interface", server.dev, "--rotate-seconds", "60", "--filter", f"udp port {PORT}",
    ]  # fmt: skip
    env = {**os.environ, "CLUSTER_NAME": IDENTITY["CLUSTER_NAME"], "NODE_NAME": IDENTITY["NODE_NAME"]}

    def record(log: Path) -> subprocess.Popen[bytes]:
        process = server.popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
        wait_for_log_line("capture running", log.read_text, process, timeout=20)
        return process

    def written(count: int) -> list[PcapName]:
        """The ring's ``count`` files once the newest holds the 20 packets just sent (tcpdump writes what it
        reads from its buffer, not at once)."""
        assert send_udp(network, count=20, rate=1000).wait(timeout=30) == 0

        def files() -> list[PcapName] | None:
            names = Spool(spool).pcap_names()
            whole = len(names) == count and scan_pcap(spool / names[-1].filename).packets == 20
            return names if whole else None

        return eventually(
            files, timeout=10, what=lambda: f"no file {count} of 20 packets: {os.listdir(spool)}"
        )

    first = record(tmp_path / "record-1.log")
    [previous] = written(1)
    first.terminate()
    assert first.wait(timeout=30) == 0, (tmp_path / "record-1.log").read_text()
    assert (spool / COMPLETION_MARKER).exists()

    second = record(tmp_path / "record-2.log")
    try:
        assert not (spool / COMPLETION_MARKER).exists(), "the previous run's marker outlived the restart"
        present = written(2)
        assert present[0] == previous
        assert closed_files(present, (spool / COMPLETION_MARKER).exists()) == [previous]
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert [scan_pcap(spool / name.filename).packets for name in present] == [20, 20]
