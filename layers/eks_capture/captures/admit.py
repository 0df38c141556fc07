"""Whether a capture may start: not a duplicate, under the concurrent-capture cap, holding a slot."""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Outcome, Request, session_of, spec_of
from eks_capture.captures.recorder import windows_asked
from eks_capture.kube.calls import Cluster
from eks_capture.kube.jobs import CaptureJob, jobs_of_capture
from eks_capture.kube.manifests.job import expires_at
from eks_capture.store.sessions import CaptureSession

logger = Logger(child=True)


def reject(request: Request, why: str, deps: Deps) -> Outcome:
    """Record a refused capture (so the operator sees why nothing ran) and say so."""
    deps.store.create_session(session_of(request, deps, "rejected", why))
    return _refused(request.capture_id, why)


def _refused(capture_id: str, why: str) -> Outcome:
    """A refusal, recorded already, logged and answered."""
    logger.warning(f"capture {capture_id} refused: {why}", extra={"capture_id": capture_id, "why": why})
    return Outcome("rejected", why, capture_id)


def duplicate(session: CaptureSession) -> Outcome:
    return Outcome(
        "duplicate",
        f"capture {session.capture_id} was already started by this event ({session.status})",
        session.capture_id,
        {name: node.status for name, node in session.nodes.items()},
        dict(session.skipped),
    )


def active_captures(cluster: Cluster, namespace: str, own: str) -> set[str]:
    """Capture ids with a Job still running in the cluster (the cluster is the truth, not the table)."""
    active: set[str] = set()
    for job in map(CaptureJob.from_kubernetes, cluster.capture_jobs(namespace)):
        if job.capture_id and job.capture_id != own and not job.finished:
            active.add(job.capture_id)
    return active


def claim_cooldown(request: Request, deps: Deps) -> str | None:
    """Start the alarm's cooldown for the capture, or hold it again; None (a manual capture: no cooldown),
    or the capture cooling the alarm down.

    Claimed before anything is planned, and again once the session is stored: a duplicate delivery that
    fails before storing anything frees the cooldown only while no session exists
    (``release_unused_cooldown``), so the delivery that stored one takes it back, or learns that another
    capture took it in between."""
    alarm = request.trigger.alarm_name
    if alarm is None:
        return None
    until = request.started_at + timedelta(seconds=deps.settings.alarm_cooldown_seconds)
    return deps.store.claim_cooldown(alarm, request.capture_id, until, deps.now())


def cooldown_holder(request: Request, retry: bool, cluster: Cluster, deps: Deps) -> str | None:
    """The capture whose cooldown of the alarm refuses this one, its session stored (the cooldown claimed
    again, as ``claim_cooldown`` says); None when it holds the cooldown, or when it is a retry (``retry``: an
    earlier attempt stored its session) that started something already: Jobs, or recorders asked for their
    window (``windows_asked``).

    An alarm's cooldown may end before Lambda's retry comes (about one and three minutes later) and a flap
    of the alarm take it meanwhile: the Jobs the earlier attempt made capture, and the windows it asked for
    reach S3 under the capture, whatever the cooldown says now, so the retry goes on and records them rather
    than calling the capture ``rejected``."""
    holder = claim_cooldown(request, deps)
    if holder is None or not retry:
        return holder
    namespace = deps.settings.capture_namespace
    made = [job.name for job in jobs_of_capture(cluster, namespace, request.capture_id)]
    asked = [] if made else windows_asked(cluster, namespace, request.capture_id)
    if not made and not asked:
        return holder
    started = f"made {len(made)} Job(s)" if made else f"asked {len(asked)} recorder(s) for a window"
    logger.warning(
        f"capture {request.capture_id} goes on though capture {holder} holds alarm "
        f"{request.trigger.alarm_name}'s cooldown now: an earlier attempt {started}",
        extra={"capture_id": request.capture_id, "jobs": made[:20], "recorders": asked[:20]},
    )
    return None


def free_unused_cooldown(request: Request, deps: Deps) -> None:
    """After a start that failed, free the alarm's cooldown if the capture stored nothing
    (``release_unused_cooldown``). When DynamoDB will not (throttled, denied), the cooldown lasts its time,
    and the start's own error is what the invocation still raises and the handler maps."""
    alarm = request.trigger.alarm_name
    if alarm is None:
        return
    try:
        deps.store.release_unused_cooldown(alarm, request.capture_id)
    except (ClientError, BotoCoreError) as error:
        logger.warning(
            f"alarm {alarm}'s cooldown not freed after capture {request.capture_id} failed to start: "
            f"it lasts {deps.settings.alarm_cooldown_seconds} s from the start; DynamoDB said: {error}",
            extra={"capture_id": request.capture_id, "alarm": alarm},
        )


def reject_started(session: CaptureSession, slot: int, why: str, deps: Deps) -> Outcome:
    """Refuse a capture whose session is stored already (``starting``, no Job made): its slot freed, the
    refusal recorded on the session."""
    deps.store.release_capture_slot(session.cluster, slot, session.capture_id)
    session.status, session.verdict, session.nodes = "rejected", why, {}
    deps.store.replace_session(session, expected_status="starting")
    return _refused(session.capture_id, why)


def claim_slot(request: Request, cluster: Cluster, deps: Deps) -> int | None:
    """A capture slot of the cluster, held until the capture's time box ends, so the concurrent-capture
    cap stays exact when invocations race. A slot is taken over once its capture is past its start and
    runs no Job (its session is read before the Jobs are listed, so a capture that just started counts)."""
    namespace = deps.settings.capture_namespace

    def ended(holder: str) -> bool:
        session = deps.store.get_session(holder)
        if session is None or session.status == "starting":
            return False
        return holder not in active_captures(cluster, namespace, request.capture_id)

    until = expires_at(spec_of(request), deps.settings) + timedelta(
        seconds=deps.settings.upload_grace_seconds
    )
    return deps.store.claim_capture_slot(
        request.cluster, request.capture_id, deps.settings.max_concurrent_captures, until, deps.now(), ended
    )
