"""The upload role as a process against moto over HTTP, on spools laid out as the capture role leaves them.

The capture role's side is played by writing its files directly (pcaps in tcpdump's naming, its
``capture.json`` and completion marker), so each case controls exactly which files exist when.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger

from eks_capture.captures.reaper import dropped_packets
from eks_capture_agent.identity import Identity
from eks_capture_agent.ledger import DroppedFile, Ledger
from eks_capture_agent.manifest import UploadTarget
from eks_capture_agent.s3client import s3_client
from eks_capture_agent.spool import Spool
from eks_capture_agent.upload import LAST_QUESTIONS_SECONDS, MANIFEST_RESERVE_SECONDS, Uploader, UploadRequest
from localcloud.aws import MotoServer
from localcloud.outages import PausableProxy
from tests.fixtures import agents
from tests.fixtures.aws import cut_a_put, make_bucket
from tests.fixtures.waiting import eventually

BUCKET = "captures-upload-test"
#: A grace period the loop leaves at once: all of it kept for the last questions to S3 and the manifest.
STOP_RESERVE_SECONDS = MANIFEST_RESERVE_SECONDS + LAST_QUESTIONS_SECONDS
IDENTITY = {"CAPTURE_ID": "cap-20261125T120000Z-00ff00ff", "CLUSTER_NAME": "demo", "NODE_NAME": "node-2"}
PREFIX = "captures/demo/cap-20261125T120000Z-00ff00ff/node-2/"
FILES = ["20261125T120000Z.pcap", "20261125T120000Z.pcap1", "20261125T120001Z.pcap"]


def _pcap(first_second: int, packets: int) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(
        struct.pack("<IIII", first_second + n // 10, (n % 10) * 100_000, 80, 80) + bytes([n % 256]) * 80
        for n in range(packets)
    )
    return header + body


def _write(spool: Path, name: str, document: dict[str, Any]) -> None:
    (spool / f".{name}.tmp").write_text(json.dumps(document))
    os.replace(spool / f".{name}.tmp", spool / name)


def _capture_record(spool: Path, expected_end: str = "2099-01-01T00:00:00.000000Z") -> None:
    settings = {"filter": "tcp port 443", "rotate_megabytes": 1, "snaplen": 262144}
    _write(spool, "capture.json", {"settings": settings, "expected_end": expected_end})


def _marker(spool: Path) -> None:
    _write(spool, "capture-done.json", {"status": "completed", "tcpdump": {"counters": {"captured": 0}}})


def _uploader(spool: Path, *extra: str, endpoint_url: str | None = None) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "eks_capture_agent", "upload", "--spool", str(spool), "--bucket", BUCKET,
        "--prefix", PREFIX, "--poll-seconds", "0.1", *extra,
    ]  # fmt: skip
    env = {**os.environ, **IDENTITY, **({"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {})}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)


def _objects() -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
    return {item["Key"]: dict(s3.head_object(Bucket=BUCKET, Key=item["Key"])) for item in listed}


def _body(key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def wait_until_taken(path: Path) -> None:
    """Until the uploader has taken ``path`` from the spool (it deletes a file once S3 holds it)."""
    eventually(lambda: not path.exists(), timeout=20, interval=0.05, what=f"{path.name} was never taken")


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    return make_bucket(BUCKET)


def test_the_newest_file_waits_until_a_newer_file_or_the_marker_shows_tcpdump_closed_it(
    tmp_path: Path, bucket: str
) -> None:
    _capture_record(tmp_path)
    contents = {name: _pcap(1_795_600_000 + index * 5, 50 + index) for index, name in enumerate(FILES)}
    for name in FILES[:2]:
        (tmp_path / name).write_bytes(contents[name])
    uploader = _uploader(tmp_path)
    wait_until_taken(tmp_path / FILES[0])
    time.sleep(1.0)
    assert (tmp_path / FILES[1]).exists(), "the file tcpdump may still be writing was taken"
    assert len([key for key in _objects() if ".pcap" in key]) == 1

    (tmp_path / FILES[2]).write_bytes(contents[FILES[2]])
    wait_until_taken(tmp_path / FILES[1])
    assert (tmp_path / FILES[2]).exists()
    _marker(tmp_path)
    assert uploader.wait(timeout=30) == 0

    manifest = json.loads(_body(f"{PREFIX}manifest.json"))
    assert [item["name"] for item in manifest["files"]] == FILES
    for item in manifest["files"]:
        original = contents[item["name"]]
        assert item["bytes"] == len(original)
        metadata = _objects()[item["key"]]["Metadata"]
        assert metadata["seq"] == str(item["seq"])
        assert metadata["filter"] == "tcp port 443"
        assert int(metadata["packets"]) == item["packets"] == (len(original) - 24) // 96


def test_a_file_the_capture_role_takes_away_empty_takes_no_seq(tmp_path: Path, bucket: str) -> None:
    """The capture role opens the next file, then waits for room to write it; with none by its stop it
    removes the file unwritten (rotation.RotatingWriter): no seq may go to a file neither uploaded nor
    dropped."""
    _capture_record(tmp_path)
    (tmp_path / FILES[0]).write_bytes(_pcap(1_795_600_000, 20))
    (tmp_path / FILES[1]).write_bytes(b"")
    uploader = _uploader(tmp_path)
    wait_until_taken(tmp_path / FILES[0])  # a step saw both files
    (tmp_path / FILES[1]).unlink()
    _marker(tmp_path)
    assert uploader.wait(timeout=30) == 0

    manifest = json.loads(_body(f"{PREFIX}manifest.json"))
    assert [(item["name"], item["seq"]) for item in manifest["files"]] == [(FILES[0], 0)]
    assert Ledger.load(Spool(tmp_path)).seqs == {FILES[0]: 0}, "a seq went to the file taken away"


def test_gzip_objects_decompress_to_the_exact_bytes_tcpdump_wrote(tmp_path: Path, bucket: str) -> None:
    _capture_record(tmp_path)
    original = _pcap(1_795_600_000, 5000)
    (tmp_path / FILES[0]).write_bytes(original)
    _marker(tmp_path)
    assert _uploader(tmp_path, "--compression", "gzip", "--compression-level", "1").wait(timeout=30) == 0
    [key] = [key for key in _objects() if key.endswith(".pcap.gz")]
    stored = _body(key)
    assert gzip.decompress(stored) == original
    assert len(stored) < len(original)


def test_a_capture_gone_without_a_marker_is_uploaded_whole_and_reported_incomplete(
    tmp_path: Path, bucket: str
) -> None:
    _capture_record(tmp_path, expected_end="2026-01-01T00:00:00.000000Z")
    for index, name in enumerate(FILES):
        (tmp_path / name).write_bytes(_pcap(1_795_600_000 + index, 20))
    uploader = _uploader(tmp_path, "--marker-wait-seconds", "0")
    assert uploader.wait(timeout=30) == 4
    manifest = json.loads(_body(f"{PREFIX}manifest.json"))
    assert manifest["status"] == "incomplete"
    assert any("completion marker" in reason for reason in manifest["incomplete_reasons"])
    assert [item["name"] for item in manifest["files"]] == FILES


def test_sigterm_before_the_marker_leaves_a_manifest_naming_what_is_left_and_a_restart_finishes(
    tmp_path: Path, bucket: str
) -> None:
    _capture_record(tmp_path)
    for index, name in enumerate(FILES):
        (tmp_path / name).write_bytes(_pcap(1_795_600_000 + index, 20))
    uploader = _uploader(tmp_path, "--grace-seconds", "4")
    wait_until_taken(tmp_path / FILES[1])
    uploader.send_signal(signal.SIGTERM)
    assert uploader.wait(timeout=20) == 4
    first = json.loads(_body(f"{PREFIX}manifest.json"))
    assert first["not_uploaded"] == [FILES[2]]
    assert [item["seq"] for item in first["files"]] == [0, 1]
    assert first["totals"]["packets"] == 40
    assert first["dropped"]["not_uploaded_packets"] == first["dropped"]["packets"] == 20, "the file left"
    assert dropped_packets(first) == 20  # what the sweep adds to the session's dropped
    assert "1 file(s), 20 packets, still in the spool" in " | ".join(first["incomplete_reasons"])

    _marker(tmp_path)
    assert _uploader(tmp_path).wait(timeout=30) == 0
    second = json.loads(_body(f"{PREFIX}manifest.json"))
    assert second["status"] == "complete"
    assert (second["totals"]["packets"], dropped_packets(second)) == (60, 0)
    assert [(item["name"], item["seq"]) for item in second["files"]] == [
        (name, seq) for seq, name in enumerate(FILES)
    ]


def test_a_capture_role_that_never_starts_ends_the_upload_role_with_an_incomplete_manifest(
    tmp_path: Path, bucket: str
) -> None:
    started = time.monotonic()
    assert _uploader(tmp_path, "--marker-wait-seconds", "1").wait(timeout=30) == 4
    assert time.monotonic() - started < 15
    manifest = json.loads(_body(f"{PREFIX}manifest.json"))
    assert manifest["status"] == "incomplete"
    assert manifest["capture"] == {"requested": None, "completion": None}
    assert manifest["files"] == []


#: The grace period after SIGTERM: (seconds, the file's place in the manifest, the upload role's exit code).
LAST_QUESTION_CASES = pytest.mark.parametrize(
    ("grace_seconds", "counted_as", "exit_code"),
    [(STOP_RESERVE_SECONDS, "files", 0), (MANIFEST_RESERVE_SECONDS, "dropped", 4)],
    ids=["time-for-the-last-question", "only-the-manifests-reserve"],
)


@LAST_QUESTION_CASES
def test_a_dropped_file_s3_holds_is_asked_for_once_more_at_the_stop_but_never_in_the_manifests_time(
    tmp_path: Path, bucket: str, moto: MotoServer, grace_seconds: float, counted_as: str, exit_code: int
) -> None:
    """The keeper dropped a file between failed attempts, one of which reached S3 with its answer cut; S3
    is away while the uploader asks, back once the grace period is over: one last question before the
    manifest counts the file once, as S3 has it, when the grace period leaves time for it; the manifest's
    reserve is never spent on it (the file stays dropped, its key left set: S3 was not asked)."""
    key = f"{PREFIX}20261125T120000Z-00000.pcap.zst"
    metadata = {"seq": "0", "packets": "20", "first-packet": "a", "last-packet": "b"}
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"stored", Metadata=metadata)
    _capture_record(tmp_path)
    _write(tmp_path, "capture-done.json", {"status": "completed", "tcpdump": {"counters": {"captured": 20}}})
    ledger = Ledger(seqs={FILES[0]: 0})
    ledger.dropped.append(DroppedFile(FILES[0], 0, 2024, "2026-11-25T12:00:05Z", "budget", 20, key))
    ledger.save(Spool(tmp_path))
    proxy = PausableProxy(moto.port)  # not resumed: S3 refuses every connection
    uploader = _uploader(tmp_path, "--grace-seconds", str(grace_seconds), endpoint_url=proxy.endpoint_url)
    assert uploader.stdout is not None
    for line in uploader.stdout:  # until its next question is due in at least 1 s (backoff.retry_delay)
        if json.loads(line).get("failures") == 3:
            break
    proxy.resume()
    uploader.send_signal(signal.SIGTERM)  # the loop has no time left: only the reserves
    try:
        assert uploader.wait(timeout=30) == exit_code, uploader.stdout.read()
    finally:
        proxy.pause()

    manifest = json.loads(_body(f"{PREFIX}manifest.json"))
    files = [(item["name"], item["key"], item["packets"]) for item in manifest["files"]]
    dropped = [(item["name"], item["key"], item["packets"]) for item in manifest["dropped"]["items"]]
    assert {"files": files, "dropped": dropped} == {
        "files": [],
        "dropped": [],
        counted_as: [(FILES[0], key, 20)],
    }
    assert manifest["status"] == ("complete" if counted_as == "files" else "incomplete")


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """An upload role run in this process takes SIGTERM and SIGINT: give them back after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


#: The last file's upload attempt as the stop comes: (did its PUT land, files uploaded, files left).
LEFT_ATTEMPT_OUTCOMES = pytest.mark.parametrize(
    ("landed", "uploaded", "left"),
    [(True, FILES, []), (False, FILES[:2], FILES[2:])],
    ids=["its-put-reached-s3", "its-put-never-left"],
)


@LEFT_ATTEMPT_OUTCOMES
def test_a_file_left_after_a_failed_attempt_as_the_grace_period_ended_counts_once_as_s3_has_it(
    tmp_path: Path,
    aws: MotoServer,
    own_signal_handlers: None,
    landed: bool,
    uploaded: list[str],
    left: list[str],
) -> None:
    """The last file's upload attempt fails and SIGTERM comes: the loop has no time left for the retry, so
    the file is still in the spool. One last question for its key: an object this very file's upload sends
    makes it uploaded, not also left with its packets counted as dropped (the indexer counts the object's);
    no object leaves it counted as left."""
    make_bucket(agents.BUCKET)
    spool = tmp_path / "spool"
    spool.mkdir()
    _capture_record(spool)
    _write(spool, "capture-done.json", {"status": "completed", "tcpdump": {"counters": {"captured": 60}}})
    for index, name in enumerate(FILES):
        (spool / name).write_bytes(_pcap(1_795_600_000 + index, 20))
    names = agents.IDENTITY
    uploader = Uploader(
        UploadRequest(
            spool, UploadTarget(agents.BUCKET, agents.PREFIX, "zstd", 1, 1 << 30), STOP_RESERVE_SECONDS
        ),
        Identity(names["CAPTURE_ID"], names["CLUSTER_NAME"], names["NODE_NAME"], None),
        s3_client(),
        Logger(service="test"),
    )
    stop = functools.partial(os.kill, os.getpid(), signal.SIGTERM)  # the pod's stop comes with the failure
    cut_a_put(uploader.client, landed=landed, key_ending="-00002.pcap.zst", then=stop)

    exit_code = uploader.run()

    written = agents.manifest()
    in_s3 = sum(agents.packets_in_s3(tmp_path).values())
    assert in_s3 + written["dropped"]["packets"] == 60, "a packet counted twice or lost"
    assert (in_s3, written["dropped"]["not_uploaded_packets"]) == (20 * len(uploaded), 20 * len(left))
    assert [item["name"] for item in written["files"]] == uploaded
    assert written["not_uploaded"] == left
    assert sorted(path.name for path in spool.glob("*.pcap*")) == left, (
        "S3 holds the file: the local copy goes"
    )
    assert exit_code == (0 if landed else 4)
