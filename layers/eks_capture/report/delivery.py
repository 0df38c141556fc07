"""At a capture's end: build its report next to its files, then send the end notification with a link.

The notification is never lost to the report: a report that fails, or is not done while enough of the
invocation is left to notify, is named in the notification instead of linked. EventBridge delivers at
least once and the function retries, so the notification is marked on the session once sent and a
delivery that finds the mark does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as BuildTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from aws_lambda_powertools import Logger

from eks_capture.captures.deps import Deps
from eks_capture.captures.notifications import ReportLink, ReportOutcome, notify_end
from eks_capture.errors import CaptureError
from eks_capture.report.building import report_capture
from eks_capture.report.links import DEFAULT_EXPIRY
from eks_capture.store.sessions import CaptureSession

logger = Logger(child=True)

#: Seconds of the invocation kept back from the report for sending and marking the notification.
NOTIFY_RESERVE_SECONDS = 30.0
CLOSED_STATES = ("completed", "failed")

DeliveryStatus = Literal["notified", "reported", "duplicate", "not_closed", "unknown_capture"]


class NotificationNotSent(CaptureError):  # noqa: N818 - the domain names these by what happened
    """SNS did not take the end notification; the invocation fails so that it is retried."""

    code = "NotificationNotSent"
    retryable = True

    def __init__(self, capture_id: str) -> None:
        super().__init__(f"the end notification of {capture_id} was not sent", capture_id=capture_id)


@dataclass(frozen=True)
class Delivery:
    """What one delivery did, for the logs, the metrics and the tests."""

    capture_id: str
    status: DeliveryStatus
    report_key: str = ""
    problem: str = ""

    def to_dict(self) -> dict[str, str]:
        """The delivery as the handler's JSON-ready result."""
        return {
            "capture_id": self.capture_id,
            "status": self.status,
            "report_key": self.report_key,
            "problem": self.problem,
        }


def build_report(deps: Deps, capture_id: str, budget_seconds: float) -> ReportOutcome:
    """Build and store the report within ``budget_seconds``: its link, or why there is none."""
    if budget_seconds <= 0:
        return ReportOutcome(problem="no time was left in the invocation to build it")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
    signed_at = deps.now()
    future = pool.submit(
        report_capture,
        capture_id,
        table=deps.settings.capture_table,
        bucket=deps.settings.capture_bucket,
        s3=deps.aws.s3,
        dynamodb=deps.aws.dynamodb,
        expires=DEFAULT_EXPIRY,
    )
    try:
        published = future.result(timeout=budget_seconds)
    except BuildTimeout:
        return ReportOutcome(problem=f"it took longer than the {budget_seconds:.0f} s left to build it")
    except Exception as error:  # whatever breaks the report must not take the notification with it
        logger.exception(f"report of {capture_id} failed")
        return ReportOutcome(problem=f"{type(error).__name__}: {error}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    link = ReportLink(published.key, published.url, signed_at + timedelta(seconds=DEFAULT_EXPIRY))
    return ReportOutcome(link=link, path_findings=published.path_findings)


def deliver(deps: Deps, capture_id: str, seconds_left: Callable[[], float]) -> Delivery:
    """Report on a closed capture and send its end notification, once."""
    session = deps.store.get_session(capture_id)
    if session is None:
        logger.warning(f"no session {capture_id}; nothing to report")
        return Delivery(capture_id, "unknown_capture")
    if session.status not in CLOSED_STATES:
        logger.warning(f"capture {capture_id} is {session.status}, not closed; nothing to report")
        return Delivery(capture_id, "not_closed")
    if deps.store.end_notice_sent(capture_id):
        logger.info(f"capture {capture_id}: end notification sent already")
        return Delivery(capture_id, "duplicate")
    outcome = build_report(deps, capture_id, seconds_left() - NOTIFY_RESERVE_SECONDS)
    key = outcome.link.key if outcome.link else ""
    return _notify(deps, session, outcome, Delivery(capture_id, "reported", key, outcome.problem))


def _notify(deps: Deps, session: CaptureSession, outcome: ReportOutcome, done: Delivery) -> Delivery:
    if not deps.settings.notification_topic_arn:
        return done
    if not notify_end(deps.sns, deps.settings, session, outcome):
        raise NotificationNotSent(session.capture_id)
    if not deps.store.record_end_notice(session.capture_id, deps.now(), done.report_key):
        logger.warning(f"capture {session.capture_id}: another delivery notified at the same time")
    return Delivery(done.capture_id, "notified", done.report_key, done.problem)
