"""A capture Job's state in the API becomes one verdict per node, and the reaper's decision (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eks_capture.captures.verdicts import (
    Evidence,
    counted_files,
    judge,
    listed_at,
    node_evidence,
    proven,
    session_outcome,
    top_findings,
    unindexed_files,
)
from eks_capture.kube.jobs import CaptureJob
from eks_capture.kube.labels import ANNOTATION_EXPIRES_AT
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import NodeCapture

NOW = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
BOUND, GRACE = timedelta(minutes=5), timedelta(minutes=2)


def _job(age: float = 60, expires_in: float = 600, **status: Any) -> dict[str, Any]:
    created = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expires = (NOW + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {
            "name": "j",
            "creationTimestamp": created,
            "annotations": {ANNOTATION_EXPIRES_AT: expires},
        },
        "status": status,
    }


def _condition(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"conditions": [{"type": kind, "status": "True", "reason": reason, "message": message}]}


def _pod(phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status}}


FAILED_CONTAINER = {
    "containerStatuses": [
        {"name": "upload", "state": {"terminated": {"exitCode": 0}}},
        {"name": "capture", "state": {"terminated": {"exitCode": 2, "message": "bad filter"}}},
    ]
}
PULL_BACKOFF = {
    "containerStatuses": [{"name": "capture", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]
}
EMPTYDIR_EVICTION = 'Usage of EmptyDir volume "spool" exceeds the limit "1100Mi". '
OUT_OF_PODS = {
    "reason": "OutOfpods",
    "message": "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 29, "
    "capacity: 29",
}
UNSCHEDULABLE = {
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available",
        }
    ]
}


@pytest.mark.parametrize(
    ("job", "pods", "status", "delete", "words"),
    [
        pytest.param(
            _job(**_condition("Complete")),
            [_pod("Succeeded")],
            "completed",
            True,
            "uploaded",
            id="complete-job-is-removed",
        ),
        pytest.param(
            _job(failed=1, **_condition("Failed", "DeadlineExceeded")),
            [],
            "deadline_exceeded",
            True,
            "activeDeadlineSeconds",
            id="deadline-exceeded-job-whose-pod-ran",
        ),
        pytest.param(
            _job(**_condition("Failed", "DeadlineExceeded")),
            [],
            "never_started",
            True,
            "its Job ended (DeadlineExceeded) without ever creating a pod",
            id="deadline-exceeded-job-that-never-had-a-pod",
        ),
        pytest.param(
            _job(**_condition("Failed", "BackoffLimitExceeded")),
            [_pod("Failed", **FAILED_CONTAINER)],
            "failed",
            True,
            "container capture exited 2: bad filter",
            id="failed-pod-names-its-container",
        ),
        pytest.param(
            _job(**_condition("Failed", "BackoffLimitExceeded")),
            [_pod("Failed", **OUT_OF_PODS)],
            "never_started",
            True,
            "the node's kubelet rejected the pod (OutOfpods): Node didn't have enough resource: pods,",
            id="pod-rejected-by-a-full-node-never-started",
        ),
        pytest.param(
            _job(),
            [_pod("Failed", **OUT_OF_PODS)],
            "never_started",
            True,
            "(OutOfpods)",
            id="rejection-seen-before-the-job-controller-fails-the-job",
        ),
        pytest.param(
            _job(**_condition("Failed", "BackoffLimitExceeded")),
            [_pod("Failed", reason="Evicted", message=EMPTYDIR_EVICTION, **FAILED_CONTAINER)],
            "failed",
            True,
            f"evicted by the node's kubelet: {EMPTYDIR_EVICTION.strip()}",
            id="an-evicted-pod-says-so-not-its-killed-container",
        ),
        pytest.param(
            _job(),
            [_pod("Failed", reason="Evicted", message=EMPTYDIR_EVICTION, **FAILED_CONTAINER)],
            "failed",
            True,
            "evicted by the node's kubelet: Usage of EmptyDir volume",
            id="eviction-seen-before-the-job-controller-fails-the-job",
        ),
        pytest.param(
            _job(expires_in=-GRACE.total_seconds() - 1),
            [_pod("Running")],
            "deadline_exceeded",
            True,
            "after its expiry",
            id="running-past-expiry-and-grace",
        ),
        pytest.param(
            _job(expires_in=-GRACE.total_seconds() + 5),
            [_pod("Running")],
            "running",
            False,
            "capturing",
            id="running-within-the-grace-is-kept",
        ),
        pytest.param(
            _job(age=BOUND.total_seconds() + 1),
            [_pod("Pending", **PULL_BACKOFF)],
            "never_started",
            True,
            "ImagePullBackOff",
            id="image-pull-backoff-past-the-bound",
        ),
        pytest.param(
            _job(age=BOUND.total_seconds() + 1),
            [_pod("Pending", **UNSCHEDULABLE)],
            "never_started",
            True,
            "unschedulable: 0/3 nodes are available",
            id="unschedulable-past-the-bound",
        ),
        pytest.param(
            _job(age=10),
            [_pod("Pending", **PULL_BACKOFF)],
            "pending",
            False,
            "waiting",
            id="young-pending-pod-is-left-alone",
        ),
        pytest.param(
            {**_job(), "metadata": {**_job()["metadata"], "deletionTimestamp": "2026-11-25T03:29:00Z"}},
            [_pod("Running")],
            "stopped",
            False,
            "flushing",
            id="job-being-deleted-is-waited-for",
        ),
    ],
)
def test_judge_gives_each_job_state_its_verdict(
    job: dict[str, Any], pods: list[dict[str, Any]], status: str, delete: bool, words: str
) -> None:
    verdict = judge(CaptureJob.from_kubernetes(job), pods, NOW, BOUND, GRACE)

    assert (verdict.status, verdict.delete) == (status, delete)
    assert words in verdict.reason


PSA_REFUSAL = (
    'Error creating: pods "cap-x-abcde" is forbidden: violates PodSecurity "restricted:latest": '
    "host namespaces (hostNetwork=true)"
)


@pytest.mark.parametrize(
    ("job", "pods", "refusal", "status", "delete", "reason"),
    [
        pytest.param(
            _job(age=BOUND.total_seconds() + 1),
            [],
            PSA_REFUSAL,
            "never_started",
            True,
            f"the cluster refused its pod (FailedCreate): {PSA_REFUSAL}",
            id="refused-pod-past-the-bound-is-never-started-with-the-clusters-words",
        ),
        pytest.param(
            _job(age=10),
            [],
            PSA_REFUSAL,
            "pending",
            False,
            f"its pod is refused so far: {PSA_REFUSAL}",
            id="young-refused-job-is-left-to-retry",
        ),
        pytest.param(
            _job(age=10, **_condition("Failed", "DeadlineExceeded")),
            [],
            PSA_REFUSAL,
            "never_started",
            True,
            f"the cluster refused its pod (FailedCreate): {PSA_REFUSAL}",
            id="refused-job-that-hit-its-deadline",
        ),
        pytest.param(
            _job(age=BOUND.total_seconds() + 1),
            [],
            None,
            "never_started",
            True,
            f"its Job created no pod in {int(BOUND.total_seconds()) + 1} s",
            id="podless-job-without-an-event-past-the-bound",
        ),
        pytest.param(
            _job(age=BOUND.total_seconds() + 1, active=1),
            [],
            None,
            "pending",
            False,
            "waiting for its pod to start",
            id="a-job-counting-an-active-pod-is-not-podless",
        ),
    ],
)
def test_a_job_that_never_got_a_pod_is_never_started_with_the_clusters_reason(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    refusal: str | None,
    status: str,
    delete: bool,
    reason: str,
) -> None:
    verdict = judge(CaptureJob.from_kubernetes(job), pods, NOW, BOUND, GRACE, refusal)
    assert (verdict.status, verdict.delete, verdict.reason) == (status, delete, reason)


MANIFEST_WITH_PACKETS = {"totals": {"packets": 120}, "dropped": {"items": []}}
MANIFEST_DROPPED_ONLY = {"totals": {"packets": 0}, "dropped": {"items": [{"packets": 40}]}}
EMPTY_MANIFEST = {"totals": {"packets": 0}, "incomplete_reasons": ["tcpdump exited 1: no such device"]}


@pytest.mark.parametrize(
    ("status", "evidence", "proven_status", "reason"),
    [
        ("completed", Evidence(file_packets=10), "completed", "done"),
        ("deadline_exceeded", Evidence(manifest=MANIFEST_WITH_PACKETS), "deadline_exceeded", "done"),
        ("stopped", Evidence(manifest=MANIFEST_DROPPED_ONLY), "stopped", "done"),
        (
            "completed",
            Evidence(),
            "failed",
            "no manifest and no packet reached S3; its Job: completed: done",
        ),
        (
            "deadline_exceeded",
            Evidence(manifest=EMPTY_MANIFEST),
            "failed",
            "its manifest counts no packet (tcpdump exited 1: no such device); "
            "its Job: deadline exceeded: done",
        ),
        ("never_started", Evidence(), "never_started", "done"),
        (
            "failed",
            Evidence(file_packets=5, files=2),
            "failed",
            "done; before that, 2 file(s) with 5 packets reached S3",
        ),
        ("failed", Evidence(), "failed", "done"),
    ],
)
def test_a_node_counts_as_captured_only_when_s3_proves_packets(
    status: str, evidence: Evidence, proven_status: str, reason: str
) -> None:
    node = NodeCapture(node="n", status=status, reason="done")  # type: ignore[arg-type]
    assert (proven(node, evidence).status, proven(node, evidence).reason) == (proven_status, reason)


def _nodes(**statuses: tuple[str, str]) -> dict[str, NodeCapture]:
    return {
        name: NodeCapture(node=name, status=status, reason=reason)  # type: ignore[arg-type]
        for name, (status, reason) in statuses.items()
    }


@pytest.mark.parametrize(
    ("nodes", "status", "verdict"),
    [
        (
            _nodes(a=("completed", "ok"), b=("deadline_exceeded", "ok")),
            "completed",
            "2 of 2 node(s) captured: 3 file(s), 90 packets, 1 dropped; top finding: 3 resets",
        ),
        (
            _nodes(a=("completed", "ok"), b=("failed", "create jobs refused by an admission webhook")),
            "completed",
            "1 of 2 node(s) captured: 3 file(s), 90 packets, 1 dropped; top finding: 3 resets; "
            "not captured: b failed (create jobs refused by an admission webhook)",
        ),
        (
            _nodes(a=("never_started", "the cluster refused its pod (FailedCreate): quota")),
            "failed",
            "0 of 1 node(s) captured: 3 file(s), 90 packets, 1 dropped; top finding: 3 resets; "
            "not captured: a never started (the cluster refused its pod (FailedCreate): quota)",
        ),
        ({}, "failed", "0 of 0 node(s) captured: 3 file(s), 90 packets, 1 dropped; top finding: 3 resets"),
        (
            {
                **_nodes(a=("completed", "ok")),
                **{
                    f"n{i}": NodeCapture(node=f"n{i}", status="failed", reason="node lock not taken: X")
                    for i in range(5)
                },
                **_nodes(z=("failed", "its Job: other")),
            },
            "completed",
            "1 of 7 node(s) captured: 3 file(s), 90 packets, 1 dropped; top finding: 3 resets; "
            "not captured: n0, n1, n2 and 2 more failed (node lock not taken: X); z failed (its Job: other)",
        ),
    ],
)
def test_a_session_completes_only_when_a_node_captured_and_its_verdict_says_why_not(
    nodes: dict[str, NodeCapture], status: str, verdict: str
) -> None:
    assert session_outcome(nodes, 3, 90, 1, ["3 resets"]) == (status, verdict)


def test_a_verdict_says_how_many_files_in_s3_are_not_indexed_and_counts_them() -> None:
    nodes = _nodes(a=("completed", "ok"))

    assert session_outcome(nodes, 3, 90, 1, ["3 resets"], unindexed=2) == (
        "completed",
        "1 of 1 node(s) captured: 3 file(s), 90 packets, 1 dropped; 2 file(s) in S3 not indexed; "
        "top finding: 3 resets",
    )


A_KEY, B_KEY = "captures/c/cap/n/a.pcap.zst", "captures/c/cap/n/b.pcap.zst"
LISTED = {
    "files": [
        {"key": A_KEY, "packets": 30, "stored_bytes": 3000},
        {"key": B_KEY, "packets": None, "stored_bytes": 200},
        {"key": None},
    ],
    "written_at": "2026-11-25T03:29:00.500000+00:00",
}


@pytest.mark.parametrize(
    ("manifest", "indexed", "unindexed"),
    [
        (None, {}, []),
        ({"files": None}, {}, []),
        (LISTED, {A_KEY: 3000, B_KEY: 200}, []),
        (LISTED, {A_KEY: 3000}, [B_KEY]),
        (LISTED, {}, [A_KEY, B_KEY]),
        (LISTED, {A_KEY: 300, B_KEY: 200}, [A_KEY]),  # the recorder wrote A again, longer: v1 indexed
        ({"files": [{"key": A_KEY, "packets": 30}]}, {A_KEY: 3000}, [A_KEY]),  # no size said: none matches
    ],
    ids=["no-manifest", "no-files", "all-indexed", "one-not-yet", "none-yet", "older-version", "no-size"],
)
def test_a_file_its_manifest_lists_is_unindexed_until_the_index_holds_its_key_at_its_stored_size(
    manifest: dict[str, Any] | None, indexed: dict[str, int], unindexed: list[str]
) -> None:
    assert [f["key"] for f in unindexed_files(manifest, indexed)] == unindexed


def _record(node: str, key: str, packets: int, size: int = 1) -> FileRecord:
    return FileRecord(
        capture_id="cap", cluster="c", node=node, s3_key=key, size=size, packets=packets, bytes=1
    )


def test_a_nodes_evidence_counts_its_indexed_files_and_those_its_manifest_lists_unindexed() -> None:
    files = [
        _record("n", "captures/c/cap/n/c.pcap.zst", 70),
        _record("other", "captures/c/cap/o/d.pcap.zst", 5),
    ]

    assert node_evidence(files, "n", LISTED, unindexed_files(LISTED, {})) == Evidence(100, LISTED, 3)


def test_a_key_indexed_as_an_earlier_version_counts_once_as_its_manifest_lists_it() -> None:
    files = [_record("n", A_KEY, 3, size=300), _record("n", B_KEY, 7, size=200)]
    late = unindexed_files(LISTED, {f.s3_key: f.size for f in files})

    assert [f.s3_key for f in counted_files(files, late)] == [B_KEY]
    assert node_evidence(files, "n", LISTED, late) == Evidence(37, LISTED, 2)


@pytest.mark.parametrize(
    ("written_at", "moment"),
    [
        ("2026-11-25T03:29:00Z", datetime(2026, 11, 25, 3, 29, tzinfo=UTC)),
        (LISTED["written_at"], datetime(2026, 11, 25, 3, 29, 0, 500000, tzinfo=UTC)),
        ("2026-11-25T03:29:00", None),  # no zone: not a moment to compare
        ("yesterday", None),
        (None, None),
    ],
)
def test_a_manifest_says_when_it_was_written_or_nothing(
    written_at: str | None, moment: datetime | None
) -> None:
    assert listed_at({"written_at": written_at}) == moment


def test_top_findings_sum_each_finding_over_files_and_rank_by_severity_then_count() -> None:
    def finding(severity: str, kind: str, subject: str, count: int, message: str) -> dict[str, Any]:
        return {"severity": severity, "kind": kind, "subject": subject, "count": count, "message": message}

    files = [
        {"findings": [finding("warning", "retrans", "10.0.0.1", 50, "50 retransmissions to 10.0.0.1")]},
        {
            "findings": [
                finding("critical", "syn", "10.0.0.2:443", 3, "3 SYNs to 10.0.0.2:443 never answered"),
                finding("warning", "retrans", "10.0.0.1", 60, "60 retransmissions to 10.0.0.1"),
            ]
        },
        {"findings": [finding("warning", "zero", "10.0.0.3", 100, "100 zero windows from 10.0.0.3")]},
    ]

    assert top_findings(files) == [
        "3 SYNs to 10.0.0.2:443 never answered",
        "110 retransmissions to 10.0.0.1",
        "100 zero windows from 10.0.0.3",
    ]
