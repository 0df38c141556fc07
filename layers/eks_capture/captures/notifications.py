"""SNS notifications at a capture's start and end: which nodes, why, where the files are, what was found.

The end notification goes out once per capture, with a link to the capture's report or the reason there
is none: whoever sends it (the report function, or the teardown when it cannot hand the end over)
records ``notified_at`` on the session item, and a sender that finds it there sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture.settings import Settings
from eks_capture.store.sessions import CaptureSession
from eks_capture.store.sizes import clipped, kept_reason, named_skips

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = Logger(child=True)
#: SNS refuses a message over 256 KB: the nodes' lines keep at most this much of it.
NODE_LINES_BYTES = 200_000


@dataclass(frozen=True)
class ReportLink:
    """Where a capture's report is stored and a presigned link to it, valid until ``expires_at``."""

    key: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class ReportOutcome:
    """What became of a capture's report at its end: a link, or why there is none."""

    link: ReportLink | None = None
    problem: str = ""
    #: Sentences of the path analysis: where packets were lost between the capture's nodes.
    path_findings: tuple[str, ...] = ()

    def lines(self, session: CaptureSession) -> str:
        """The notification's report lines."""
        retry = f"eks-capture report {session.capture_id}"
        if self.link is None:
            return f"Report: not built ({self.problem}); build it with: {retry}\n"
        until = self.link.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"Report: {self.link.url}\n(link valid until {until}; a fresh one: {retry})\n"


def console_link(settings: Settings, session: CaptureSession) -> str:
    region = settings.aws_region or "us-east-1"
    return (
        f"https://{region}.console.aws.amazon.com/s3/buckets/{settings.capture_bucket}"
        f"?prefix={session.s3_prefix}"
    )


def _nodes(session: CaptureSession) -> str:
    """A line a node, each reason as the session item keeps it (store/sizes.py), so that a capture of the
    most nodes, each refused in long words, still fits SNS's message (the verdict says the words once)."""
    nodes = len(session.nodes)
    lines = [
        f"  - {name}: {node.status}{f' ({kept_reason(node.reason, nodes)})' if node.reason else ''}"
        for name, node in sorted(session.nodes.items())
    ]
    lines += [f"  - {name}: skipped ({why})" for name, why in sorted(named_skips(session.skipped).items())]
    return clipped("\n".join(lines), NODE_LINES_BYTES) or "  (none)"


def start_message(settings: Settings, session: CaptureSession) -> tuple[str, str]:
    subject = f"eks-capture: capture {session.capture_id} {session.status} on {session.cluster}"
    body = (
        f"Why: {session.trigger.reason}\n"
        f"Capture: {session.capture_id} ({session.duration_seconds} s, filter {session.filter or 'none'})\n"
        f"Status: {session.status}: {session.verdict}\n"
        f"{limited_lines(session)}"
        f"Nodes:\n{_nodes(session)}\n"
        f"Files: s3://{settings.capture_bucket}/{session.s3_prefix}\n{console_link(settings, session)}\n"
    )
    return subject[:100], body


def limited_lines(session: CaptureSession) -> str:
    """What the stack's alarm caps clipped or refused, one line each (nothing when they changed nothing)."""
    if not session.limited:
        return ""
    lines = [f"  - {option}: {why}" for option, why in sorted(session.limited.items())]
    return "Alarm caps:\n" + "\n".join(lines) + "\n"


def end_message(
    settings: Settings, session: CaptureSession, report: ReportOutcome | None = None
) -> tuple[str, str]:
    subject = f"eks-capture: capture {session.capture_id} {session.status} on {session.cluster}"
    findings = "\n".join(f"  - {f}" for f in (*session.findings, *(report.path_findings if report else ())))
    totals = session.totals
    body = (
        f"Why: {session.trigger.reason}\n"
        f"Verdict: {session.verdict}\n"
        f"Totals: {totals.files} file(s), {totals.packets} packets, {totals.bytes} bytes, "
        f"{totals.dropped} dropped\n"
        f"Top findings:\n{findings or '  (none)'}\n"
        f"Nodes:\n{_nodes(session)}\n"
        f"Files: s3://{settings.capture_bucket}/{session.s3_prefix}\n{console_link(settings, session)}\n"
        f"{report.lines(session) if report else ''}"
    )
    return subject[:100], body


def _publish(sns: SNSClient | None, settings: Settings, subject: str, body: str) -> bool:
    if sns is None or not settings.notification_topic_arn:
        return False
    try:
        sns.publish(TopicArn=settings.notification_topic_arn, Subject=subject, Message=body)
    except (ClientError, BotoCoreError) as error:
        logger.warning(f"notification not sent: {error}", extra={"subject": subject})
        return False
    return True


def notify_start(sns: SNSClient | None, settings: Settings, session: CaptureSession) -> None:
    """Tell the subscribers a capture started (or could not), and where its files will be."""
    _publish(sns, settings, *start_message(settings, session))


def notify_end(
    sns: SNSClient | None, settings: Settings, session: CaptureSession, report: ReportOutcome | None = None
) -> bool:
    """Tell the subscribers how a capture ended, its totals, top findings and report; whether SNS took it."""
    return _publish(sns, settings, *end_message(settings, session, report))
