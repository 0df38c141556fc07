"""Recording a started capture: its context beside the pcaps, its session's verdict, the notification."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture.captures.context import ClusterContext, store_context
from eks_capture.captures.deps import Deps
from eks_capture.captures.notifications import notify_start
from eks_capture.captures.plan import Outcome, Request
from eks_capture.captures.targets import TargetPlan
from eks_capture.captures.verdicts import said_together
from eks_capture.errors import NodeLocksNotTaken
from eks_capture.store.sessions import CaptureSession
from eks_capture.store.sizes import VERDICT_BYTES, clipped, named_notes, named_skips

logger = Logger(child=True)


def record_start(
    session: CaptureSession,
    plan: TargetPlan,
    request: Request,
    slot: int,
    context: ClusterContext | None,
    deps: Deps,
    refused: Sequence[str] = (),
) -> Outcome:
    """Store the started capture's context and its session's verdict, notify, and say what happened;
    ``refused``: DynamoDB's answers to the node lock batches it refused, which the verdict quotes once."""
    settings, store = deps.settings, deps.store
    started = [n for n in session.nodes.values() if n.status in ("pending", "running")]
    failed = {n.node: n.reason for n in session.nodes.values() if n.status == "failed"}
    locks_refused = quoted(said_once(refused))
    if started:
        keep_context(context, deps)
        session.status = "running"
        preset = f" with preset {session.preset}" if session.preset else ""
        recorded = sum(1 for n in started if n.job is None)
        rings = f", {recorded} of them from their recorder's ring" if recorded else ""
        failures = f"; {len(failed)} node(s) failed: {by_reason(failed)}" if failed else ""
        session.verdict = f"capturing on {len(started)} node(s){rings}{preset}{failures}{locks_refused}"
    else:
        store.release_capture_slot(request.cluster, slot, request.capture_id)
        session.status = "failed"
        reasons = by_reason({**failed, **session.skipped}) or "; ".join(plan.notes)
        session.verdict = f"no node could be captured ({reasons or 'no node matched'}){locks_refused}"
    session.verdict = clipped(session.verdict, VERDICT_BYTES)  # what the item keeps, logged and sent alike
    store.replace_session(session, expected_status="starting")
    notify_start(deps.sns, settings, session)
    outcome = Outcome(
        session.status,
        session.verdict,
        session.capture_id,
        {name: node.status for name, node in session.nodes.items()},
        dict(session.skipped),
    )
    logger.info(
        f"capture {session.capture_id} {session.status}: {session.verdict}",
        extra=start_log_fields(session, outcome, plan.notes),
    )
    return outcome


def start_log_fields(session: CaptureSession, outcome: Outcome, notes: Sequence[str]) -> dict[str, Any]:
    """The start log line's fields: its skipped targets as the session keeps them (``named_skips``) and its
    notes alike (``named_notes``), since a selector's 4,000 skipped targets or notes whole would pass
    CloudWatch Logs' 256 KB event (cut or refused)."""
    return {
        "capture_id": session.capture_id,
        "cluster": session.cluster,
        "nodes": outcome.nodes,
        "skipped": named_skips(outcome.skipped),
        "notes": named_notes(notes),
    }


def said_once(refused: Sequence[str]) -> str:
    """DynamoDB's answers to refused node lock batches, each said once, in the order they came."""
    return "; ".join(dict.fromkeys(refused))


def quoted(said: str) -> str:
    """DynamoDB's answers to refused node lock batches (``said_once``), for a verdict (nothing when none was
    refused: each answer says at least its code)."""
    return f"; DynamoDB refused node locks: {said}" if said else ""


def record_retry(session: CaptureSession, refusals: list[str], deps: Deps) -> NoReturn:
    """No node lock was taken, for a reason that may pass on a later try: the session stays ``starting`` with
    each node's reason (what ``show`` says until Lambda's retry starts the capture, and what the sweep
    closes it with if no retry does), and NodeLocksNotTaken fails the invocation so Lambda retries it."""
    why = said_once(refusals)
    session.verdict = f"no node lock taken yet; Lambda retries the event{quoted(why)}"
    try:
        deps.store.replace_session(session, expected_status="starting")
    except (ClientError, BotoCoreError) as error:  # the table refusing this too: the retry writes it
        logger.warning(
            f"could not record the nodes' reasons before the retry: {error}",
            extra={"capture_id": session.capture_id, "error": str(error)},
        )
    raise NodeLocksNotTaken(session.capture_id, len(session.nodes), why)


def by_reason(reasons: dict[str, str]) -> str:
    """Nodes' reasons in words, ``a: why; b: other``; nodes sharing one reason said together."""
    return said_together(reasons.items(), lambda who, why: f"{who}: {why}")


def keep_context(context: ClusterContext | None, deps: Deps) -> None:
    """Keep the snapshot beside the capture's pcaps; a failure costs names in findings, not the capture."""
    if context is None:
        return
    try:
        key = store_context(deps.aws.s3, deps.settings.capture_bucket, context)
    except ClientError as error:
        logger.warning(
            "could not store the cluster context: findings will name IPs only",
            extra={"capture_id": context.capture_id, "error": str(error)},
        )
        return
    logger.info(
        f"cluster context stored at s3://{deps.settings.capture_bucket}/{key}",
        extra={
            "capture_id": context.capture_id,
            "pods": len(context.pods),
            "services": len(context.services),
            "nodes": len(context.nodes),
            "truncated": context.truncated,
        },
    )
