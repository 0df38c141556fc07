"""SNS notifications at a capture's start and end: which nodes, why, where the files are, what was found."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from eks_capture.sessions import CaptureSession
from eks_capture.settings import Settings

logger = Logger(child=True)


def console_link(settings: Settings, session: CaptureSession) -> str:
    region = settings.aws_region or "us-east-1"
    return (
        f"https://{region}.console.aws.amazon.com/s3/buckets/{settings.capture_bucket}"
        f"?prefix={session.s3_prefix}"
    )


def _nodes(session: CaptureSession) -> str:
    lines = [
        f"  - {name}: {node.status}{f' ({node.reason})' if node.reason else ''}"
        for name, node in sorted(session.nodes.items())
    ]
    lines += [f"  - {name}: skipped ({why})" for name, why in sorted(session.skipped.items())]
    return "\n".join(lines) or "  (none)"


def start_message(settings: Settings, session: CaptureSession) -> tuple[str, str]:
    subject = f"eks-capture: capture {session.capture_id} {session.status} on {session.cluster}"
    body = (
        f"Why: {session.trigger.reason}\n"
        f"Capture: {session.capture_id} ({session.duration_seconds} s, filter {session.filter or 'none'})\n"
        f"Status: {session.status}: {session.verdict}\n"
        f"Nodes:\n{_nodes(session)}\n"
        f"Files: s3://{settings.capture_bucket}/{session.s3_prefix}\n{console_link(settings, session)}\n"
    )
    return subject[:100], body


def end_message(settings: Settings, session: CaptureSession) -> tuple[str, str]:
    subject = f"eks-capture: capture {session.capture_id} {session.status} on {session.cluster}"
    findings = "\n".join(f"  - {f}" for f in session.findings) or "  (none)"
    totals = session.totals
    body = (
        f"Why: {session.trigger.reason}\n"
        f"Verdict: {session.verdict}\n"
        f"Totals: {totals.files} file(s), {totals.packets} packets, {totals.bytes} bytes, "
        f"{totals.dropped} dropped\n"
        f"Top findings:\n{findings}\n"
        f"Nodes:\n{_nodes(session)}\n"
        f"Files: s3://{settings.capture_bucket}/{session.s3_prefix}\n{console_link(settings, session)}\n"
    )
    return subject[:100], body


def _publish(sns: Any, settings: Settings, subject: str, body: str) -> None:
    if sns is None or not settings.notification_topic_arn:
        return
    try:
        sns.publish(TopicArn=settings.notification_topic_arn, Subject=subject, Message=body)
    except ClientError as error:
        logger.warning(f"notification not sent: {error}", extra={"subject": subject})


def notify_start(sns: Any, settings: Settings, session: CaptureSession) -> None:
    """Tell the subscribers a capture started (or could not), and where its files will be."""
    _publish(sns, settings, *start_message(settings, session))


def notify_end(sns: Any, settings: Settings, session: CaptureSession) -> None:
    """Tell the subscribers how a capture ended, its totals and its top findings."""
    _publish(sns, settings, *end_message(settings, session))
