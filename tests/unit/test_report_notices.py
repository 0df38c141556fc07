"""The Capture Closed event and the end notification's report lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eks_capture.captures.notifications import ReportLink, ReportOutcome, end_message
from eks_capture.errors import CaptureRejected
from eks_capture.events.closings import CaptureClosed, closed_entry, parse_capture_closed
from eks_capture.settings import Settings
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger
from tests.events import load_event

SAMPLE = "lifecycle/capture-closed"
CLOSED_AT = datetime(2026, 11, 25, 11, 12, 4, tzinfo=UTC)
SETTINGS = Settings(
    capture_bucket="shop-pcaps",
    capture_table="capture-index",
    capture_image="example.com/eks-capture@sha256:" + "0" * 64,
)
SESSION = CaptureSession(
    capture_id="cap-20261125T110000Z-9f3c2a1b",
    cluster="shop-prod",
    status="completed",
    trigger=Trigger(kind="manual", reason="checkout latency", event_id="e-1"),
    created_at=CLOSED_AT - timedelta(minutes=12),
    expires_at=CLOSED_AT - timedelta(minutes=2),
    duration_seconds=600,
    nodes={"node-a": NodeCapture(node="node-a", status="completed")},
    s3_prefix="captures/shop-prod/cap-20261125T110000Z-9f3c2a1b/",
    verdict="1 of 1 node(s) captured: 3 file(s), 1200 packets, 0 dropped",
    ended_at=CLOSED_AT,
)
LINK = ReportLink(
    key=f"{SESSION.s3_prefix}report.html",
    url="https://shop-pcaps.s3.us-west-2.amazonaws.com/report.html?X-Amz-Expires=3600",
    expires_at=CLOSED_AT + timedelta(hours=1),
)


def _with(path: str, value: Any) -> dict[str, Any]:
    event = load_event(SAMPLE)
    *parents, leaf = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    target[leaf] = value
    return event


def test_the_sample_event_is_a_capture_closed_event() -> None:
    event = parse_capture_closed(load_event(SAMPLE), expected_account="123456789012")

    assert isinstance(event, CaptureClosed)
    assert event.detail.capture_id == load_event(SAMPLE)["detail"]["capture_id"]


@pytest.mark.parametrize(
    ("change", "value", "field"),
    [
        ("detail.capture_id", "cap-../../etc", "detail.capture_id"),
        ("detail.status", "exploded", "detail.status"),
        ("detail.notify", "everyone", "detail.notify"),
        ("detail-type", "Start Capture", "detail-type"),
        ("source", "aws.s3", "source"),
    ],
)
def test_a_malformed_event_is_rejected_naming_its_bad_field(change: str, value: Any, field: str) -> None:
    with pytest.raises(CaptureRejected) as raised:
        parse_capture_closed(_with(change, value))

    assert raised.value.field == field


def test_an_event_from_another_account_is_rejected() -> None:
    with pytest.raises(CaptureRejected) as raised:
        parse_capture_closed(load_event(SAMPLE), expected_account="210987654321")

    assert raised.value.field == "account"


def test_the_event_the_teardown_puts_is_the_one_the_report_function_reads() -> None:
    entry = closed_entry("eks-capture-lifecycle", SESSION)
    delivered = {
        **load_event(SAMPLE),
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
    }

    event = parse_capture_closed(delivered)

    assert entry["EventBusName"] == "eks-capture-lifecycle"
    assert (event.detail.capture_id, event.detail.cluster) == (SESSION.capture_id, SESSION.cluster)
    assert (event.detail.status, event.detail.verdict) == (SESSION.status, SESSION.verdict)


@pytest.mark.parametrize(
    ("report", "present", "absent"),
    [
        (
            ReportOutcome(link=LINK),
            [f"Report: {LINK.url}", "valid until 2026-11-25 12:12 UTC"],
            ["not built"],
        ),
        (ReportOutcome(problem="NoSuchKey: gone"), ["Report: not built (NoSuchKey: gone)"], ["https://shop"]),
        (None, [], ["Report:"]),
    ],
)
def test_the_end_notification_links_the_report_or_says_why_there_is_none(
    report: ReportOutcome | None, present: list[str], absent: list[str]
) -> None:
    subject, body = end_message(SETTINGS, SESSION, report)
    plain_subject, plain_body = end_message(SETTINGS, SESSION)

    assert subject == plain_subject
    assert body.startswith(plain_body)
    for text in present:
        assert text in body
    for text in absent:
        assert text not in body
    if report is not None:
        assert f"eks-capture report {SESSION.capture_id}" in body


def test_the_path_findings_join_the_top_findings_of_the_end_notification() -> None:
    where = (
        "42 of 10,310 packets from payments/checkout-7f9c on node node-a to payments/ledger-0 on node "
        "node-b were lost between the nodes; none on either node"
    )
    session = SESSION.model_copy(update={"findings": ["3 SYNs to payments/ledger-0:8443 never answered"]})

    _subject, body = end_message(SETTINGS, session, ReportOutcome(link=LINK, path_findings=(where,)))

    findings = body.split("Top findings:\n", 1)[1].split("\nNodes:", 1)[0].splitlines()
    assert findings == ["  - 3 SYNs to payments/ledger-0:8443 never answered", f"  - {where}"]


def test_without_any_finding_the_end_notification_says_none() -> None:
    _subject, body = end_message(SETTINGS, SESSION, ReportOutcome(link=LINK))

    assert "Top findings:\n  (none)\n" in body
