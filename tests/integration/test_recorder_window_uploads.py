"""A window's file is counted once, as S3 has it: an upload attempt whose PUT reached S3 while its answer was
lost (an outage that cuts connections mid-request) must leave the file neither in S3 and among the
manifest's dropped files (the ring evicted it before a retry) nor in S3 twice (a retry wrote it under another
key). The interleaving is scripted step by step on the recorder's own loop against the local S3: the
attempt (its answer cut after S3 stored the object, or the request kept from leaving), the ring keeper's
check, the recorder's next steps. capinfos counts the packets in S3."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from eks_capture_agent.identity import Identity
from eks_capture_agent.manifest import MANIFEST
from eks_capture_agent.recorder import RECORDER_CAPTURE_ID, Recorder, RecorderRequest
from eks_capture_agent.recorder_windows import WINDOW_REQUEST_ANNOTATION
from eks_capture_agent.ring import RingKeeper
from eks_capture_agent.s3client import S3Client, s3_client
from eks_capture_agent.spool import COMPLETION_MARKER, Spool
from localcloud.aws import MotoServer
from localcloud.kube.downward import render_map, write_atomically
from tests.fixtures.agents import BUCKET, IDENTITY, PREFIX, manifest, packets_in_s3, pcap_object, s3_objects
from tests.fixtures.aws import cut_a_put, make_bucket
from tests.fixtures.packets import Packet, pcap

T0 = datetime(2026, 11, 25, 12, 44, 20, tzinfo=UTC).timestamp()
PACKETS = [3, 5, 7]  # in the ring's files, oldest first


@dataclass(frozen=True)
class Ring:
    """The ring's files as tcpdump names them, oldest first (the newest is open until the record role stops),
    and the seconds between their first packets."""

    names: tuple[str, ...]
    apart: float


#: Rotated every 10 s (-G 10).
BY_TIME = Ring(("20261125T124420Z.pcap", "20261125T124430Z.pcap", "20261125T124440Z.pcap"), 10.0)
#: Rotated by size (-C) within one second: the files' keys differ only by their seq.
BY_SIZE = Ring(("20261125T124420Z.pcap", "20261125T124420Z.pcap1", "20261125T124420Z.pcap2"), 0.3)
NAMES = list(BY_TIME.names)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ring_file_bytes(index: int, ring: Ring = BY_TIME) -> bytes:
    """The ring's file ``index`` as tcpdump wrote it: PACKETS[index] packets, a millisecond apart."""
    start_ns = int((T0 + ring.apart * index) * 1e9)
    return pcap([Packet(start_ns + n * 1_000_000, b"\0" * 60) for n in range(PACKETS[index])])


def write_ring_file(spool: Path, index: int, ring: Ring = BY_TIME) -> None:
    """The ring's file ``index`` as tcpdump leaves it, last written nine tenths into its span."""
    name = ring.names[index]
    (spool / name).write_bytes(ring_file_bytes(index, ring))
    last_write = T0 + ring.apart * (index + 0.9)
    os.utime(spool / name, (last_write, last_write))


def ring_recorder(tmp_path: Path, files: int, settle_seconds: float = 1e9, ring: Ring = BY_TIME) -> Recorder:
    """A recorder whose ring holds its first ``files`` files and which is asked for a window over them.

    Its budget is one byte, so each check of its keeper evicts every closed file not being uploaded; the
    test runs the keeper only where the script says. The window (long over) takes its open file as far as
    written only past ``settle_seconds``."""
    spool = tmp_path / "spool"
    spool.mkdir()
    for index in range(files):
        write_ring_file(spool, index, ring)
    window = {
        "capture_id": IDENTITY["CAPTURE_ID"],
        "from": _iso(T0 - 60),
        "to": _iso(T0 + 600),
        "trigger_at": _iso(T0 + 25),
        "prefix": PREFIX,
    }
    podinfo = tmp_path / "podinfo"
    write_atomically(podinfo, {"annotations": render_map({WINDOW_REQUEST_ANNOTATION: json.dumps(window)})})
    request = RecorderRequest(
        spool=spool,
        bucket=BUCKET,
        request_file=podinfo / "annotations",
        ring_seconds=3600,
        budget_bytes=1,
        settle_seconds=settle_seconds,
    )
    node = Identity(RECORDER_CAPTURE_ID, IDENTITY["CLUSTER_NAME"], IDENTITY["NODE_NAME"], None)
    return Recorder(request, node, s3_client(), Logger(service="test"))


#: The oldest of two files fails its upload attempt: (did its PUT land, files S3 ends with, files dropped).
ATTEMPT_OUTCOMES = pytest.mark.parametrize(
    ("landed", "uploaded", "dropped"),
    [(True, NAMES[:2], []), (False, NAMES[1:2], NAMES[:1])],
    ids=["its-put-reached-s3", "its-put-never-left"],
)


def record_stopped(recorder: Recorder) -> None:
    """The record role's end: tcpdump closed its last file."""
    Spool(recorder.request.spool).write_json(COMPLETION_MARKER, {"exit_code": 0})


def restarted(recorder: Recorder) -> Recorder:
    """The recorder container restarted (crashed, OOM-killed): a new process on the same spool and request."""
    return Recorder(recorder.request, recorder.node, s3_client(), Logger(service="test"))


def assert_each_file_counted_once(tmp_path: Path, files: int, ring: Ring = BY_TIME) -> dict[str, Any]:
    """Packets in S3 (capinfos) + packets the manifest reports dropped = packets in the ring's files, each
    file in S3 once or dropped once, and the manifest's files exactly the objects in S3."""
    written = manifest()
    in_s3 = packets_in_s3(tmp_path)
    stored = [item["name"] for item in written["files"]]
    dropped = [item["name"] for item in written["dropped"]["items"]]
    dropped_packets = sum(item["packets"] or 0 for item in written["dropped"]["items"])
    assert sorted(stored + dropped) == list(ring.names[:files]), "every file once, uploaded or dropped"
    assert {item["key"] for item in written["files"]} == {key for key in s3_objects() if ".pcap" in key}
    assert sum(in_s3.values()) == written["totals"]["packets"]
    assert sum(in_s3.values()) + dropped_packets == sum(PACKETS[:files])
    numbers = sorted(
        item["seq"] for item in written["files"] + written["dropped"]["items"] if item["seq"] >= 0
    )
    assert numbers == list(range(len(numbers))), "every seq handed out is a file uploaded or dropped"
    return written


@ATTEMPT_OUTCOMES
def test_a_window_file_evicted_after_a_failed_attempt_is_counted_once_as_s3_has_it(
    aws: MotoServer, tmp_path: Path, landed: bool, uploaded: list[str], dropped: list[str]
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)
    cut_a_put(recorder.client, landed=landed)

    recorder.step()  # the window is taken in; the closed file's attempt fails, the open file waits
    recorder.keeper.enforce()  # the ring needs room: the closed file goes before a retry
    assert not (recorder.request.spool / NAMES[0]).exists()
    record_stopped(recorder)
    recorder.step()  # the last file closed: uploaded, the window settled

    written = assert_each_file_counted_once(tmp_path, files=2)
    assert [item["name"] for item in written["files"]] == uploaded
    assert [item["name"] for item in written["dropped"]["items"]] == dropped
    assert written["status"] == ("complete" if landed else "incomplete")


@pytest.mark.parametrize(
    "stopped_first", [False, True], ids=["while-the-ring-records", "once-every-file-closed"]
)
def test_a_window_file_retried_after_its_answer_was_lost_is_in_s3_once(
    aws: MotoServer, tmp_path: Path, stopped_first: bool
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=3)
    if stopped_first:
        record_stopped(recorder)
    cut_a_put(recorder.client, landed=True)

    recorder.step()  # the oldest file's PUT lands but its answer is lost; the other closed files upload
    recorder.step()  # the oldest file retried
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=3)
    assert written["status"] == "complete"


def test_an_open_file_whose_upload_failed_is_retried_before_the_manifest_says_it_was_uploaded(
    aws: MotoServer, tmp_path: Path
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=1, settle_seconds=0)
    cut_a_put(recorder.client, landed=False)

    recorder.step()  # past the window's settle time: the open file's upload, as far as written, fails
    recorder.step()  # retried

    written = assert_each_file_counted_once(tmp_path, files=1)
    assert written["notes"] == [f"{NAMES[0]} was still open: uploaded as far as written"]
    assert written["status"] == "complete"


def test_a_window_file_the_ring_lets_go_of_before_any_attempt_is_dropped_with_its_packets(
    aws: MotoServer, tmp_path: Path
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)

    recorder.step()  # the window is taken in: the closed file uploads, the open one is wanted
    write_ring_file(recorder.request.spool, 2)  # tcpdump rotates: the wanted file is closed
    recorder.keeper.enforce()  # the ring needs room: the wanted file goes before the recorder's next look
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=3)
    assert [item["name"] for item in written["dropped"]["items"]] == [NAMES[1]]


@ATTEMPT_OUTCOMES
def test_a_window_file_whose_attempt_was_never_confirmed_when_the_recorder_stops_is_counted_once(
    aws: MotoServer, tmp_path: Path, landed: bool, uploaded: list[str], dropped: list[str]
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)
    record_stopped(recorder)
    cut_a_put(recorder.client, landed=landed)

    recorder.step()  # the oldest file's attempt fails, the other file uploads
    recorder.close_windows()  # SIGTERM's grace is over before the retry

    written = assert_each_file_counted_once(tmp_path, files=2)
    assert [item["name"] for item in written["files"]] == uploaded
    assert [item["name"] for item in written["dropped"]["items"]] == dropped
    assert written["status"] == "incomplete"


@pytest.mark.parametrize(
    "ring", [BY_TIME, BY_SIZE], ids=["rotated-by-time", "rotated-by-size-within-one-second"]
)
def test_a_recorder_restarted_mid_window_keeps_each_file_under_one_key_holding_that_files_bytes(
    aws: MotoServer, tmp_path: Path, ring: Ring
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=3, ring=ring)

    recorder.step()  # the closed files upload as seq 0 and 1; the open one is wanted
    (recorder.request.spool / ring.names[0]).unlink()  # the budget lets go of the oldest
    recorder = restarted(recorder)
    recorder.step()  # the same window, served on
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=3, ring=ring)
    assert [item["seq"] for item in written["files"]] == [0, 1, 2]
    for item in written["files"]:
        assert pcap_object(item["key"]) == ring_file_bytes(ring.names.index(item["name"]), ring), item["key"]
    assert written["status"] == "complete"
    assert restarted(recorder).windows == {}, "a window served is not served again"


class RecorderKilledError(Exception):
    """The recorder process is killed (OOM) here: nothing after this point runs."""


def killed_before_the_confirmation(client: S3Client) -> None:
    """The next PUT lands and the process dies before it could confirm it (HEAD) or save anything more."""

    def kill(**_: object) -> None:
        raise RecorderKilledError

    client.meta.events.register("before-call.s3.HeadObject", kill)


@pytest.mark.parametrize(
    "interruption",
    [lambda client: cut_a_put(client, landed=True), killed_before_the_confirmation],
    ids=["its-answer-lost", "the-recorder-killed-before-its-confirmation"],
)
def test_a_file_whose_put_landed_unconfirmed_before_a_restart_and_then_evicted_is_counted_as_s3_has_it(
    aws: MotoServer, tmp_path: Path, interruption: Callable[[S3Client], None]
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)
    interruption(recorder.client)

    with contextlib.suppress(RecorderKilledError):
        recorder.step()  # the oldest file's PUT lands unconfirmed; then the container restarts
    (recorder.request.spool / NAMES[0]).unlink()  # and the budget lets go of the file before a retry
    recorder = restarted(recorder)
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=2)
    assert [item["name"] for item in written["files"]] == NAMES[:2]
    assert written["status"] == "complete"


class KeeperCheckWaiting:
    """The ring keeper's lock with the keeper's next check waiting for it, as the keeper's thread waits:
    the check runs the moment the lock is let go, before its holder does anything more."""

    def __init__(self, keeper: RingKeeper) -> None:
        self._lock = keeper.lock
        self._waiting = [keeper.enforce]

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()
        waiting, self._waiting = self._waiting, []
        for check in waiting:
            check()


@pytest.mark.parametrize(
    "evicted_as_it_stops", [False, True], ids=["still-open", "closed-and-evicted-as-the-recorder-stops"]
)
def test_a_wanted_file_never_attempted_when_the_recorder_stops_is_dropped_with_its_packets(
    aws: MotoServer, tmp_path: Path, evicted_as_it_stops: bool
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)

    recorder.step()  # the closed file uploads; the open one is wanted
    if evicted_as_it_stops:
        write_ring_file(recorder.request.spool, 2)  # tcpdump rotates: the wanted file is closed
        recorder.keeper.lock = KeeperCheckWaiting(recorder.keeper)  # type: ignore[assignment]
    recorder.close_windows()  # SIGTERM's grace is over before the file was uploaded

    written = assert_each_file_counted_once(tmp_path, files=2)
    assert [(item["name"], item["packets"]) for item in written["dropped"]["items"]] == [
        (NAMES[1], PACKETS[1])
    ]
    assert written["status"] == "incomplete"


def refuse_the_states_rewrite(recorder: Recorder) -> Callable[[], None]:
    """The spool (a full emptyDir) refuses the state's rewrite until the returned function is called."""
    unwritable = recorder.request.spool / "..recorder-state.json.tmp"
    unwritable.mkdir()  # the state's temporary file cannot be written
    return unwritable.rmdir


def refuse_the_open_files_copy(recorder: Recorder) -> Callable[[], None]:
    """The spool is full when the open file's whole records are copied: the copy's write fails with ENOSPC,
    as /dev/full answers (the recorder removes the copy after the failure)."""
    copy = recorder.request.spool / f".{IDENTITY['CAPTURE_ID']}-{NAMES[0]}"
    copy.symlink_to("/dev/full")
    return lambda: copy.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("files", "settle_seconds", "stopped_first", "refuse"),
    [
        (2, 1e9, False, refuse_the_states_rewrite),
        (2, 1e9, True, refuse_the_states_rewrite),
        (1, 0, False, refuse_the_states_rewrite),
        (1, 0, False, refuse_the_open_files_copy),
    ],
    ids=[
        "a-closed-file-while-the-ring-records",
        "once-every-file-closed",
        "the-open-file-past-the-settle-time",
        "the-open-files-copy-past-the-settle-time",
    ],
)
def test_no_upload_starts_and_no_manifest_while_the_spool_will_not_keep_the_key_a_restart_needs(
    aws: MotoServer,
    tmp_path: Path,
    files: int,
    settle_seconds: float,
    stopped_first: bool,
    refuse: Callable[[Recorder], Callable[[], None]],
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=files, settle_seconds=settle_seconds)
    if stopped_first:
        record_stopped(recorder)
    accept_writes = refuse(recorder)

    recorder.step()
    assert not s3_objects(), "no file uploaded, and no manifest for a window missing them"
    assert list(recorder.windows) == [IDENTITY["CAPTURE_ID"]]
    accept_writes()
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=files)
    assert written["status"] == "complete"


def test_a_file_the_ring_lets_go_of_after_the_spool_refused_its_attempt_is_dropped_under_its_number(
    aws: MotoServer, tmp_path: Path
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=2)
    accept_writes = refuse_the_states_rewrite(recorder)
    recorder.step()  # the closed file is numbered; its attempt is not kept, so no PUT
    accept_writes()
    recorder.keeper.enforce()  # the ring needs room: the closed file goes before the retry
    record_stopped(recorder)
    recorder.step()

    written = assert_each_file_counted_once(tmp_path, files=2)
    assert [(item["name"], item["seq"]) for item in written["dropped"]["items"]] == [(NAMES[0], 0)]
    assert [(item["name"], item["seq"]) for item in written["files"]] == [(NAMES[1], 1)]


@pytest.mark.parametrize(
    ("end", "packets", "status"),
    [
        (Recorder.step, PACKETS[0] + PACKETS[1], "complete"),
        (Recorder.close_windows, PACKETS[0], "incomplete"),
    ],
    ids=["retried-once-the-spool-takes-writes", "the-recorder-stopping-first"],
)
def test_a_retry_the_spool_will_not_keep_leaves_the_earlier_attempt_whose_put_landed_in_place(
    aws: MotoServer, tmp_path: Path, end: Callable[[Recorder], None], packets: int, status: str
) -> None:
    make_bucket(BUCKET)
    recorder = ring_recorder(tmp_path, files=1, settle_seconds=0)
    cut_a_put(recorder.client, landed=True)
    recorder.step()  # past the settle time: the open file as far as written; its PUT lands, its answer lost
    earlier = dict(recorder.windows[IDENTITY["CAPTURE_ID"]].attempted)
    with (recorder.request.spool / NAMES[0]).open("ab") as tcpdump:
        tcpdump.write(ring_file_bytes(1)[24:])  # tcpdump writes on: the retry's copy is longer
    accept_writes = refuse_the_states_rewrite(recorder)

    recorder.step()  # the retry is not made
    assert [key for key in s3_objects() if key.endswith(MANIFEST)] == []
    assert recorder.windows[IDENTITY["CAPTURE_ID"]].attempted == earlier, "S3 may hold the earlier copy"
    accept_writes()
    end(recorder)  # retried as far as written now, or SIGTERM's grace is over first: S3 is asked for the key

    written = manifest()
    assert [(item["name"], item["packets"]) for item in written["files"]] == [(NAMES[0], packets)]
    assert list(packets_in_s3(tmp_path).values()) == [packets] == [written["totals"]["packets"]]
    assert written["dropped"]["items"] == []
    assert written["status"] == status


def test_the_copy_of_an_open_file_a_killed_recorder_was_uploading_leaves_the_spool_when_it_restarts(
    aws: MotoServer, tmp_path: Path
) -> None:
    recorder = ring_recorder(tmp_path, files=2)
    copy = recorder.request.spool / f".{IDENTITY['CAPTURE_ID']}-{NAMES[1]}"
    copy.write_bytes(ring_file_bytes(1))  # the whole records of the open file, as _upload copies them

    restarted(recorder)

    assert not copy.exists(), "the ring's budget would count it for good"
    assert sorted(path.name for path in recorder.request.spool.iterdir() if ".pcap" in path.name) == NAMES[:2]
