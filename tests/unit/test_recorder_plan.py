"""The trigger's side of the recorder: the window it asks for, the request the agent reads, and which
recorder pods can serve one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eks_capture.captures.recorder import (
    DOWNWARD_REFRESH_SECONDS,
    healthy_recorders,
    plan_window,
    recorder_problem,
    unhealthy_recorders,
    window_request,
    window_verdict,
)
from eks_capture.ids import capture_id_for_event
from eks_capture_agent.recorder_windows import parse_window_request

TRIGGER = datetime(2026, 11, 25, 13, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lookback", "ring", "reach"),
    [
        (360, 600, 360),
        (360, 360, 360 - DOWNWARD_REFRESH_SECONDS),
        (600, 300, 300 - DOWNWARD_REFRESH_SECONDS),
        (0, 600, 0),
        (120, 30, 0),
    ],
    ids=["fits", "ring-equal-to-lookback", "ring-shorter", "no-lookback", "ring-shorter-than-the-refresh"],
)
def test_the_lookback_is_capped_by_what_the_ring_still_holds_when_the_request_arrives(
    lookback: int, ring: int, reach: int
) -> None:
    window = plan_window(TRIGGER, lookback, 300, ring)
    assert window.lookback == reach
    assert window.start == TRIGGER - timedelta(seconds=reach)
    assert window.end == TRIGGER + timedelta(seconds=300)
    assert ("holds only" in window.note) is (reach < lookback)


def test_the_verdict_says_how_far_back_a_capped_window_reaches() -> None:
    window = plan_window(TRIGGER, 360, 300, 240 + DOWNWARD_REFRESH_SECONDS)
    assert (
        window.note
        == "reaches 240 s before the trigger: the ring holds only 4 minutes of the 6 minutes asked"
    )


def test_the_agent_reads_the_request_the_trigger_writes_to_the_same_window() -> None:
    capture_id = capture_id_for_event("event-1", TRIGGER)
    window = plan_window(TRIGGER, 120, 60, 600)
    read = parse_window_request(
        window_request(capture_id, "shop-prod", "node-a", window), "shop-prod", "node-a"
    )
    assert read.capture_id == capture_id
    assert read.start == window.start.timestamp()
    assert read.end == window.end.timestamp()
    assert read.trigger_at == TRIGGER.timestamp()
    assert read.prefix == f"captures/shop-prod/{capture_id}/node-a/"


def pod(name: str = "rec-a", node: str = "node-a", **status: Any) -> dict[str, Any]:
    running = {"name": "record", "state": {"running": {}}, "restartCount": 0}
    return {
        "metadata": {"name": name, "annotations": {"eks-capture.io/ring-seconds": "600"}},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "containerStatuses": [running], **status},
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p, None),
        (lambda p: p["status"].update(phase="Pending"), "phase Pending"),
        (lambda p: p["metadata"].update(deletionTimestamp="2026-11-25T13:00:00Z"), "being deleted"),
        (
            lambda p: p["status"]["containerStatuses"][0].update(
                state={"waiting": {"reason": "CrashLoopBackOff"}}
            ),
            "container record CrashLoopBackOff",
        ),
        (
            lambda p: p["status"]["containerStatuses"][0].update(restartCount=5),
            "container record restarted 5 times",
        ),
    ],
    ids=["running", "pending", "terminating", "crash-looping", "restarting"],
)
def test_a_recorder_pod_is_healthy_only_when_running_steadily(change: Any, problem: str | None) -> None:
    recorder = pod()
    change(recorder)
    assert recorder_problem(recorder) == problem


def test_healthy_recorders_are_found_by_node_with_their_ring_and_the_rest_reported() -> None:
    sick = pod("rec-b", "node-b", phase="Failed")
    found = healthy_recorders([pod(), sick])
    assert list(found) == ["node-a"]
    assert found["node-a"].name == "rec-a"
    assert found["node-a"].ring_seconds == 600
    assert unhealthy_recorders([pod(), sick]) == {"rec-b": "phase Failed"}


@pytest.mark.parametrize(
    ("manifest", "status", "says"),
    [
        (None, "failed", "no manifest"),
        (
            {"totals": {"files": 3, "pre_trigger_files": 2}, "window": {"reach": "the ring held it all"}},
            "completed",
            "3 file(s) from the recorder's ring, 2 before the trigger; the ring held it all",
        ),
        (
            {"totals": {"files": 1}, "window": {}, "incomplete_reasons": ["2 file(s) left the ring"]},
            "completed",
            "incomplete: 2 file(s) left the ring",
        ),
    ],
    ids=["no-manifest", "whole", "incomplete"],
)
def test_a_recorder_nodes_verdict_comes_from_its_window_manifest(
    manifest: dict[str, Any] | None, status: str, says: str
) -> None:
    verdict_status, reason = window_verdict(manifest)
    assert verdict_status == status
    assert says in reason
