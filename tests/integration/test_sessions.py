"""The capture index keeps one truth under retries, flapping alarms and duplicate file events."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from eks_capture.events.s3 import ordered_sequencer
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.claims import CLAIMS_PER_TRANSACTION
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger
from localcloud.template import Stack

NOW = datetime(2026, 11, 25, 3, 12, tzinfo=UTC)


@pytest.fixture
def store(stack: Stack) -> CaptureStore:
    return CaptureStore(os.environ["CAPTURE_TABLE"])


def _session(
    capture_id: str = "cap-20261125T031200Z-0a1b2c3d", alarm: str | None = "eks-capture-dns"
) -> CaptureSession:
    return CaptureSession(
        capture_id=capture_id,
        cluster="demo-cluster",
        trigger=Trigger(
            kind="alarm" if alarm else "manual", reason="DNS errors", event_id="e1", alarm_name=alarm
        ),
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        duration_seconds=300,
    )


def _file(capture_id: str, node: str, key: str, first: datetime, packets: int = 10) -> FileRecord:
    return FileRecord(
        capture_id=capture_id,
        cluster="demo-cluster",
        node=node,
        s3_key=key,
        size=100,
        packets=packets,
        bytes=packets * 100,
        first_ts=first,
        last_ts=first + timedelta(seconds=59),
    )


def test_a_redelivered_start_finds_its_session_instead_of_creating_another(store: CaptureStore) -> None:
    assert store.create_session(_session()) is True
    assert store.create_session(_session()) is False
    assert store.sessions("demo-cluster") == [_session()]


def test_node_states_are_kept_per_node_and_a_settled_node_is_settled_once(store: CaptureStore) -> None:
    session = _session()
    store.create_session(session)
    started = session.model_copy(
        update={
            "status": "running",
            "nodes": {
                "ip-10-0-1-5": NodeCapture(node="ip-10-0-1-5", job="j1", status="running"),
                "ip-10-0-2-7": NodeCapture(node="ip-10-0-2-7", job="j2"),
            },
            "skipped": {"ip-10-0-3-9": "NotReady"},
        }
    )
    assert store.replace_session(started, expected_status="starting") is True
    assert store.replace_session(started, expected_status="starting") is False

    done = NodeCapture(node="ip-10-0-1-5", job="j1", status="completed", reason="uploaded everything")
    assert store.settle_node(session.capture_id, done, len(started.nodes)) is True
    assert (
        store.settle_node(
            session.capture_id, done.model_copy(update={"status": "failed"}), len(started.nodes)
        )
        is False
    )

    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert {n: c.status for n, c in stored.nodes.items()} == {
        "ip-10-0-1-5": "completed",
        "ip-10-0-2-7": "pending",
    }
    assert stored.skipped == {"ip-10-0-3-9": "NotReady"}


EVICTED = "its pod failed: Evicted: " + "The node was low on resource: ephemeral-storage. " * 10  # 515 bytes


@pytest.mark.parametrize(
    ("nodes", "kept"),
    [(2, EVICTED), (1_000, EVICTED[:39] + "…(truncated, 515 bytes)")],
    ids=["few nodes: whole", "the most nodes: 64 bytes"],
)
def test_a_settled_nodes_reason_keeps_its_share_of_the_session_item(
    store: CaptureStore, nodes: int, kept: str
) -> None:
    session = _session()
    store.create_session(session)
    evicted = NodeCapture(node="ip-10-0-1-5", job="j1", status="failed", reason=EVICTED)

    assert store.settle_node(session.capture_id, evicted, nodes) is True

    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert stored.nodes["ip-10-0-1-5"].reason == kept


def test_a_node_held_by_one_capture_is_refused_to_another_until_the_lock_expires(store: CaptureStore) -> None:
    until = NOW + timedelta(minutes=5)
    assert store.acquire_nodes("c", ["n1"], "cap-a", until, NOW).get("n1") is None
    assert store.acquire_nodes("c", ["n1"], "cap-a", until, NOW).get("n1") is None
    assert store.acquire_nodes("c", ["n1"], "cap-b", until, NOW).get("n1") == "cap-a"
    assert store.acquire_nodes("c", ["n1"], "cap-b", until, until + timedelta(seconds=1)).get("n1") is None


def test_one_transaction_of_node_claims_takes_each_free_own_or_expired_lock_and_names_each_holder(
    store: CaptureStore,
) -> None:
    until, later = NOW + timedelta(minutes=5), NOW + timedelta(seconds=1)
    nodes = [f"n{i:02d}" for i in range(CLAIMS_PER_TRANSACTION)]
    store.acquire_nodes("c", ["n17"], "cap-a", until, NOW)
    store.acquire_nodes("c", ["n63"], "cap-c", until, NOW)
    store.acquire_nodes("c", ["n05"], "cap-b", until, NOW)  # its own: a retried invocation
    store.acquire_nodes("c", ["n99"], "cap-a", NOW, NOW)  # expired by ``later``

    held = store.acquire_nodes("c", nodes, "cap-b", until, later)

    assert held == {"n17": "cap-a", "n63": "cap-c"}
    holders = {node: store.acquire_nodes("c", [node], "cap-d", until, later).get(node) for node in nodes}
    assert holders == {node: held.get(node, "cap-b") for node in nodes}


def test_releasing_a_node_never_frees_another_captures_lock(store: CaptureStore) -> None:
    until = NOW + timedelta(minutes=5)
    store.acquire_nodes("c", ["n1"], "cap-a", until, NOW)
    store.release_node("c", "n1", "cap-b")
    assert store.acquire_nodes("c", ["n1"], "cap-c", until, NOW).get("n1") == "cap-a"
    store.release_node("c", "n1", "cap-a")
    assert store.acquire_nodes("c", ["n1"], "cap-c", until, NOW).get("n1") is None


def test_concurrent_claims_on_one_node_have_exactly_one_winner(store: CaptureStore) -> None:
    until = NOW + timedelta(minutes=5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        holders = list(
            pool.map(lambda i: store.acquire_nodes("c", ["n1"], f"cap-{i}", until, NOW).get("n1"), range(16))
        )
    assert holders.count(None) == 1


def test_alarm_cooldown_refuses_a_second_capture_until_it_ends(store: CaptureStore) -> None:
    until = NOW + timedelta(minutes=15)
    assert store.claim_cooldown("eks-capture-dns", "cap-a", until, NOW) is None
    assert store.claim_cooldown("eks-capture-dns", "cap-b", until, NOW + timedelta(minutes=1)) == "cap-a"
    assert store.claim_cooldown("eks-capture-dns", "cap-b", until, until + timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    ("stored", "holder_after"),
    [(False, None), (True, "cap-20261125T031200Z-0a1b2c3d")],
    ids=["no session stored: released", "a session stored meanwhile: kept"],
)
def test_an_unused_cooldown_is_released_only_while_its_capture_has_no_session(
    store: CaptureStore, stored: bool, holder_after: str | None
) -> None:
    session = _session()
    until = NOW + timedelta(minutes=15)
    store.claim_cooldown("eks-capture-dns", session.capture_id, until, NOW)
    if stored:
        store.create_session(session)

    store.release_unused_cooldown("eks-capture-dns", session.capture_id)
    store.release_unused_cooldown("eks-capture-dns", "cap-of-another-event")  # never another capture's

    assert store.claim_cooldown("eks-capture-dns", "cap-b", until, NOW) == holder_after


def test_a_file_indexed_twice_is_counted_once(store: CaptureStore) -> None:
    session = _session()
    store.create_session(session)
    record = _file(session.capture_id, "n1", "captures/c/x/n1/a.pcap.zst", NOW, packets=7)

    assert store.record_file(record) == "indexed"
    assert store.record_file(record) == "duplicate"
    assert store.record_file(
        _file(session.capture_id, "n1", "captures/c/x/n1/b.pcap.zst", NOW, packets=5)
    ) == ("indexed")

    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert (stored.totals.files, stored.totals.packets, stored.totals.bytes) == (2, 12, 1200)
    assert len(store.files_of_capture(session.capture_id)) == 2


def _version(sequencer: str | None, packets: int, node: str = "n1") -> FileRecord:
    """One version of a node's file ``a`` as S3's event ``sequencer`` names it (None: an unordered write)."""
    record = _file(_session().capture_id, node, f"captures/c/x/{node}/a.pcap.zst", NOW, packets=packets)
    return record.model_copy(update={"sequencer": ordered_sequencer(sequencer) if sequencer else None})


@pytest.mark.parametrize(
    ("writes", "statuses", "kept"),
    [
        pytest.param([("0A", 7), ("0B", 9)], ["indexed", "replaced"], 9, id="a later version replaces"),
        pytest.param([("0A", 7), ("0A", 7)], ["indexed", "duplicate"], 7, id="the same version twice"),
        pytest.param([("0B", 9), ("0A", 7)], ["indexed", "stale"], 9, id="an older version after a newer"),
        pytest.param(
            [("0A", 7), ("0B", 9), ("0A", 7), ("0B", 9)],
            ["indexed", "replaced", "stale", "duplicate"],
            9,
            id="both events redelivered after the replacement",
        ),
        pytest.param(
            [("0100", 9), ("FF", 7)], ["indexed", "replaced"], 7, id="sequencers compare right-padded"
        ),
        pytest.param(
            [("0A", 7), (None, 9)], ["indexed", "duplicate"], 7, id="an unordered write never replaces"
        ),
        pytest.param([(None, 7), ("0A", 9)], ["indexed", "replaced"], 9, id="a sequenced write replaces"),
        pytest.param([("0B", 5), ("0C", 0)], ["indexed", "replaced"], 0, id="a later version may hold fewer"),
    ],
)
def test_a_key_written_again_keeps_its_latest_version_counted_once(
    store: CaptureStore, writes: list[tuple[str | None, int]], statuses: list[str], kept: int
) -> None:
    session = _session()
    store.create_session(session)
    store.record_file(_file(session.capture_id, "n2", "captures/c/x/n2/b.pcap.zst", NOW, packets=3))

    assert [store.record_file(_version(sequencer, packets)) for sequencer, packets in writes] == statuses

    [item] = [f for f in store.files_of_capture(session.capture_id) if f.node == "n1"]
    assert (item.packets, item.bytes) == (kept, kept * 100)
    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert (stored.totals.files, stored.totals.packets, stored.totals.bytes) == (
        2,
        kept + 3,
        (kept + 3) * 100,
    )


def test_concurrent_versions_of_a_key_end_with_the_latest_counted_once(store: CaptureStore) -> None:
    session = _session()
    store.create_session(session)
    nodes = [f"n{i}" for i in range(4)]  # four keys, each raced by its eight versions at once
    versions = [_version(f"{seq:02X}", 10 * seq, node) for seq in (3, 8, 1, 6, 2, 7, 4, 5) for node in nodes]
    start = threading.Barrier(len(versions))

    def write(version: FileRecord) -> str:
        start.wait()
        return store.record_file(version)

    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        statuses = list(pool.map(write, versions))

    assert statuses.count("indexed") == len(nodes)
    assert set(statuses) <= {"indexed", "replaced", "stale"}
    kept = {(f.node, f.sequencer, f.packets) for f in store.files_of_capture(session.capture_id)}
    assert kept == {(node, ordered_sequencer("08"), 80) for node in nodes}
    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert (stored.totals.files, stored.totals.packets, stored.totals.bytes) == (4, 320, 32000)


def test_window_query_finds_files_overlapping_the_incident_across_captures_and_nodes(
    store: CaptureStore,
) -> None:
    first, second = _session("cap-1"), _session("cap-2")
    store.create_session(first)
    store.create_session(second)
    store.record_file(_file("cap-1", "n1", "k-before", NOW - timedelta(minutes=10)))
    store.record_file(_file("cap-1", "n1", "k-overlap-start", NOW - timedelta(seconds=30)))
    store.record_file(_file("cap-2", "n2", "k-inside", NOW + timedelta(minutes=1)))
    store.record_file(_file("cap-2", "n2", "k-after", NOW + timedelta(minutes=10)))

    window = store.files_in_window("demo-cluster", NOW, NOW + timedelta(minutes=2))
    on_n2 = store.files_in_window("demo-cluster", NOW, NOW + timedelta(minutes=2), node="n2")

    assert [f.s3_key for f in window] == ["k-overlap-start", "k-inside"]
    assert [f.s3_key for f in on_n2] == ["k-inside"]


def test_status_moves_only_from_the_states_allowed(store: CaptureStore) -> None:
    session = _session()
    store.create_session(session)
    assert store.set_status(session.capture_id, "running", only_from=("starting",)) is True
    assert store.set_status(session.capture_id, "running", only_from=("starting",)) is False
    assert store.set_status(session.capture_id, "completed", verdict="3 files", ended_at=NOW) is True
    stored = store.get_session(session.capture_id)
    assert stored is not None
    assert (stored.status, stored.verdict, stored.ended_at) == ("completed", "3 files", NOW)


def test_captures_are_found_by_the_alarm_that_started_them(store: CaptureStore) -> None:
    store.create_session(_session("cap-1", alarm="eks-capture-dns"))
    store.create_session(_session("cap-2", alarm="eks-capture-syn"))
    store.create_session(_session("cap-3", alarm=None))
    assert [s.capture_id for s in store.sessions_for_alarm("eks-capture-dns")] == ["cap-1"]
