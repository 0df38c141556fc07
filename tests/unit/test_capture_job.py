"""The capture Job view: what the trigger, the reaper and the verdicts read from a Job, taken once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eks_capture.kube.jobs import CaptureJob, Ended
from eks_capture.kube.labels import ANNOTATION_EXPIRES_AT, LABEL_CAPTURE_ID

JOB: dict[str, Any] = {
    "metadata": {
        "name": "cap-20261125t031200z-0a1b2c3d-ip-10-0-1-5",
        "creationTimestamp": "2026-11-25T03:12:01Z",
        "labels": {LABEL_CAPTURE_ID: "cap-20261125T031200Z-0a1b2c3d"},
        "annotations": {ANNOTATION_EXPIRES_AT: "2026-11-25T03:19:00Z"},
    },
    "spec": {"template": {"spec": {"nodeName": "ip-10-0-1-5"}}},
    "status": {"active": 1},
}


def test_a_running_job_reads_as_its_name_node_capture_and_times() -> None:
    job = CaptureJob.from_kubernetes(JOB)

    assert job == CaptureJob(
        name="cap-20261125t031200z-0a1b2c3d-ip-10-0-1-5",
        node="ip-10-0-1-5",
        capture_id="cap-20261125T031200Z-0a1b2c3d",
        created_at=datetime(2026, 11, 25, 3, 12, 1, tzinfo=UTC),
        expires_at=datetime(2026, 11, 25, 3, 19, tzinfo=UTC),
        deleting=False,
        ended=None,
        had_pods=True,
    )
    assert not job.finished


@pytest.mark.parametrize(
    ("condition", "completed", "failure"),
    [
        ({"type": "Complete", "status": "True"}, True, None),
        (
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"},
            False,
            Ended("Failed", "DeadlineExceeded", "too long"),
        ),
        ({"type": "Failed", "status": "False", "reason": "BackoffLimitExceeded"}, False, None),
        ({"type": "Suspended", "status": "True"}, False, None),
    ],
)
def test_only_a_true_complete_or_failed_condition_ends_a_job(
    condition: dict[str, str], completed: bool, failure: Ended | None
) -> None:
    job = CaptureJob.from_kubernetes({**JOB, "status": {"conditions": [condition]}})

    assert (job.completed, job.failure, job.finished) == (
        completed,
        failure,
        completed or failure is not None,
    )


def test_a_job_without_labels_node_counts_or_times_reads_as_unknown() -> None:
    job = CaptureJob.from_kubernetes({"metadata": {"name": "j", "deletionTimestamp": "2026-11-25T03:20:00Z"}})

    assert (job.node, job.capture_id, job.created_at, job.expires_at) == ("unknown", None, None, None)
    assert (job.deleting, job.had_pods) == (True, False)
