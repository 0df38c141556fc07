"""From an alarm or a manual request to capture Jobs on the affected nodes, every decision recorded.

Idempotent by construction: the capture id is derived from the EventBridge event id, so a redelivered
event finds its own session (and its Jobs answer 409); a different event for a node already being
captured loses the node lock in DynamoDB; an alarm in its cooldown is refused, with the reason stored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException

from eks_capture.captures.context import ClusterContext, pod_entry, snapshot, store_context
from eks_capture.captures.notifications import notify_start
from eks_capture.captures.options import (
    TAG_CLUSTER,
    CaptureOptions,
    alarm_cluster,
    capture_options_for_alarm,
    capture_options_for_request,
)
from eks_capture.captures.presets import pod_hosts_filter
from eks_capture.captures.recorder import (
    DEFAULT_LOOKBACK_SECONDS,
    RecorderPod,
    alarm_lookback,
    disable,
    enable,
    find_recorders,
    plan_window,
    request_window,
)
from eks_capture.captures.targets import NodeMatch, TargetPlan, targets_for_alarm, targets_for_request
from eks_capture.errors import CaptureError, CaptureNotFound, CaptureRejected
from eks_capture.events.models import (
    AlarmStateChange,
    Metric,
    StartCapture,
    StartRecorder,
    StopCapture,
    StopRecorder,
    parse_event,
)
from eks_capture.ids import CaptureId, capture_id_for_event
from eks_capture.kube.calls import Cluster
from eks_capture.kube.labels import LABEL_CAPTURE_ID, capture_selector
from eks_capture.kube.manifests.job import CaptureSpec, capture_job, expires_at, job_name
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger

logger = Logger(child=True)

FINAL_STATES = ("completed", "failed", "rejected")
POD_DIMENSIONS = ("PodName", "FullPodName")

Planner = Callable[[list[NodeInfo], list[PodInfo]], TargetPlan]


@dataclass
class Deps:
    """What the trigger talks to; the handler builds it once per container."""

    settings: Settings
    store: CaptureStore
    cluster: Callable[[str], Cluster] = Cluster
    cloudwatch: Any = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    s3: Any = None
    sns: Any = None

    def __post_init__(self) -> None:
        if self.cloudwatch is None:
            self.cloudwatch = boto3.client("cloudwatch")
        if self.s3 is None:
            self.s3 = boto3.client("s3")
        if self.sns is None and self.settings.notification_topic_arn:
            self.sns = boto3.client("sns")


@dataclass(frozen=True)
class Outcome:
    """What the trigger did with one event, as the handler returns it and the logs say it."""

    status: str
    message: str
    capture_id: str | None = None
    nodes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "capture_id": self.capture_id,
            "nodes": self.nodes,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class _Request:
    capture_id: CaptureId
    cluster: str
    options: CaptureOptions
    trigger: Trigger
    planner: Planner
    pod_namespace: str | None
    needs_pods: bool
    started_at: datetime
    metrics: tuple[Metric, ...] = ()
    lookback_seconds: int | None = None  # None: the alarm's own, looked up only if a recorder is asked
    trigger_at: datetime | None = None


def handle(raw: dict[str, Any], deps: Deps) -> Outcome:
    """Parse one trigger event and act on it; CaptureRejected for anything malformed (nothing created)."""
    settings = deps.settings
    event = parse_event(
        raw, max_duration_seconds=settings.max_duration_seconds, expected_account=settings.expected_account
    )
    if isinstance(event, AlarmStateChange):
        return start_from_alarm(event, deps)
    if isinstance(event, StartCapture | StartRecorder | StopRecorder):
        _served(event.detail.cluster, "detail.cluster", settings)
    if isinstance(event, StartCapture):
        return start_from_request(event, deps)
    if isinstance(event, StopCapture):
        return stop_capture(event.detail.capture_id, event.detail.reason or "manual stop", deps)
    if isinstance(event, StartRecorder | StopRecorder):
        return switch_recorder(event, deps)
    raise CaptureRejected("detail-type", f"the trigger does not handle {type(event).__name__} events")


def _served(cluster: str, field: str, settings: Settings) -> str:
    """``cluster`` when the stack captures on it; CaptureRejected naming ``field`` (nothing created)."""
    if not settings.serves(cluster):
        raise CaptureRejected(
            field,
            f"cluster {cluster} is not one of this stack's clusters ({', '.join(settings.clusters)}); "
            "add it to the stack's ClusterNames",
        )
    return cluster


def _alarm_tags(event: AlarmStateChange, deps: Deps) -> dict[str, str]:
    if event.detail.alarm_tags is not None and event.detail.alarm_tags_status == "SUCCESS":
        return dict(event.detail.alarm_tags)
    arn = event.resources[0] if event.resources else None
    if arn is None:
        return {}
    try:
        response = deps.cloudwatch.list_tags_for_resource(ResourceARN=arn)
    except deps.cloudwatch.exceptions.ResourceNotFoundException:
        logger.warning(f"alarm {event.alarm_name} no longer exists: capturing with the stack's defaults")
        return {}
    return {tag["Key"]: tag["Value"] for tag in response.get("Tags", [])}


def start_from_alarm(event: AlarmStateChange, deps: Deps) -> Outcome:
    """An alarm in ALARM starts a capture on the nodes its metrics name (or the fallback)."""
    settings = deps.settings
    if not event.is_alarm:
        return Outcome("ignored", f"alarm {event.alarm_name} is {event.detail.state.value}, not ALARM")
    if not settings.watches_alarm(event.alarm_name):
        return Outcome("ignored", f"alarm {event.alarm_name} lacks the prefix {settings.alarm_name_prefix!r}")
    options = capture_options_for_alarm(
        event,
        _alarm_tags(event, deps),
        CaptureOptions.defaults(settings),
        max_duration_seconds=settings.max_duration_seconds,
    )
    cluster = _served(
        alarm_cluster(event, options, settings.default_cluster),
        f"tags.{TAG_CLUSTER}" if options.cluster is not None else "detail.configuration.metrics",
        settings,
    )
    capture_id = capture_id_for_event(event.id, event.time)
    now = deps.now()
    holder = deps.store.claim_cooldown(
        event.alarm_name, capture_id, now + timedelta(seconds=settings.alarm_cooldown_seconds), now
    )
    trigger = Trigger(
        kind="alarm",
        reason=f"alarm {event.alarm_name}: {event.detail.state.reason}"[:1024],
        event_id=event.id,
        alarm_name=event.alarm_name,
        alarm_arn=event.resources[0] if event.resources else None,
    )
    request = _Request(
        capture_id=capture_id,
        cluster=cluster,
        options=options,
        trigger=trigger,
        planner=lambda nodes, pods: targets_for_alarm(
            event,
            nodes,
            pods,
            cluster=cluster,
            fallback=options.fallback,
            max_nodes=settings.max_nodes_per_capture,
        ),
        pod_namespace=None,
        needs_pods=options.narrow_to_pods
        or any(d in m.dimensions for m in event.metrics for d in POD_DIMENSIONS),
        started_at=now,
        metrics=event.metrics,
        trigger_at=event.detail.state.timestamp,
    )
    if holder is not None:
        return _reject(request, f"alarm {event.alarm_name} is cooling down after capture {holder}", deps)
    outcome = start(request, deps)
    if outcome.status not in ("running", "duplicate"):
        deps.store.release_cooldown(event.alarm_name, capture_id)
    return outcome


def start_from_request(event: StartCapture, deps: Deps) -> Outcome:
    """A manual Start Capture: the nodes it names by any target kind."""
    settings = deps.settings
    detail = event.detail
    options = capture_options_for_request(detail, CaptureOptions.defaults(settings))
    selector = detail.targets.pod_selector
    request = _Request(
        capture_id=capture_id_for_event(event.id, event.time),
        cluster=detail.cluster,
        options=options,
        trigger=Trigger(
            kind="manual", reason=detail.reason, event_id=event.id, requested_by=detail.requested_by
        ),
        planner=lambda nodes, pods: targets_for_request(
            detail, nodes, pods, max_nodes=settings.max_nodes_per_capture
        ),
        pod_namespace=selector.namespace if selector else None,
        needs_pods=selector is not None,
        started_at=deps.now(),
        lookback_seconds=detail.lookback_seconds,
    )
    return start(request, deps)


def _session(request: _Request, deps: Deps, status: str, verdict: str = "") -> CaptureSession:
    spec = _spec(request)
    return CaptureSession(
        capture_id=request.capture_id,
        cluster=request.cluster,
        status=status,  # type: ignore[arg-type]
        trigger=request.trigger,
        created_at=request.started_at,
        expires_at=expires_at(spec, deps.settings),
        duration_seconds=request.options.duration_seconds,
        filter=request.options.filter or "",
        snaplen=request.options.snaplen,
        preset=request.options.preset,
        s3_prefix=f"captures/{request.cluster}/{request.capture_id}/",
        verdict=verdict,
    )


def _spec(request: _Request) -> CaptureSpec:
    return CaptureSpec(
        capture_id=request.capture_id,
        cluster=request.cluster,
        options=request.options,
        reason=request.trigger.reason,
        started_at=request.started_at,
    )


def _reject(request: _Request, why: str, deps: Deps) -> Outcome:
    """Record a refused capture (so the operator sees why nothing ran) and say so."""
    deps.store.create_session(_session(request, deps, "rejected", why))
    logger.warning("capture refused", extra={"capture_id": request.capture_id, "why": why})
    return Outcome("rejected", why, request.capture_id)


def _duplicate(session: CaptureSession) -> Outcome:
    return Outcome(
        "duplicate",
        f"capture {session.capture_id} was already started by this event ({session.status})",
        session.capture_id,
        {name: node.status for name, node in session.nodes.items()},
        dict(session.skipped),
    )


def _active_captures(cluster: Cluster, namespace: str, own: str) -> set[str]:
    """Capture ids with a Job still running in the cluster (the cluster is the truth, not the table)."""
    active: set[str] = set()
    for job in cluster.capture_jobs(namespace):
        status = job.get("status") or {}
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        capture = (job.get("metadata", {}).get("labels") or {}).get(LABEL_CAPTURE_ID)
        if capture and capture != own and not finished:
            active.add(capture)
    return active


def _claim_slot(request: _Request, cluster: Cluster, deps: Deps) -> int | None:
    """A capture slot of the cluster, held until the capture's time box ends, so the concurrent-capture
    cap stays exact when invocations race. A slot is taken over once its capture is past its start and
    runs no Job (its session is read before the Jobs are listed, so a capture that just started counts)."""
    namespace = deps.settings.capture_namespace

    def ended(holder: str) -> bool:
        session = deps.store.get_session(holder)
        if session is None or session.status == "starting":
            return False
        return holder not in _active_captures(cluster, namespace, request.capture_id)

    until = expires_at(_spec(request), deps.settings) + timedelta(seconds=deps.settings.upload_grace_seconds)
    return deps.store.claim_capture_slot(
        request.cluster, request.capture_id, deps.settings.max_concurrent_captures, until, deps.now(), ended
    )


def start(request: _Request, deps: Deps) -> Outcome:
    """Plan the nodes, check the caps, claim each node and create its Job, and record it all."""
    settings, store = deps.settings, deps.store
    existing = store.get_session(request.capture_id)
    if existing is not None and existing.status != "starting":
        return _duplicate(existing)
    cluster = deps.cluster(request.cluster)
    raw_nodes = cluster.nodes()
    nodes = [NodeInfo.from_kubernetes(n) for n in raw_nodes]
    raw_pods = cluster.pods(request.pod_namespace) if request.needs_pods else []
    pods = [PodInfo.from_kubernetes(p) for p in raw_pods]
    if request.options.narrow_to_pods:
        request = _narrowed_to_pods(request, raw_pods)
    plan = request.planner(nodes, pods)
    active = _active_captures(cluster, settings.capture_namespace, request.capture_id)
    cluster_wide = raw_pods if request.needs_pods and request.pod_namespace is None else None
    recorders = find_recorders(cluster, settings.capture_namespace, cluster_wide)
    if recorders and request.lookback_seconds is None:
        alarm = request.trigger.alarm_name
        lookback = alarm_lookback(deps.cloudwatch, alarm) if alarm else DEFAULT_LOOKBACK_SECONDS
        request = replace(request, lookback_seconds=lookback)
    if len(active) >= settings.max_concurrent_captures:
        return _reject(
            request,
            f"{len(active)} captures already running (the cap is {settings.max_concurrent_captures}): "
            + ", ".join(sorted(active)),
            deps,
        )
    slot = _claim_slot(request, cluster, deps)
    if slot is None:
        cap = settings.max_concurrent_captures
        return _reject(
            request, f"all {cap} capture slots are taken by starting captures (the cap is {cap})", deps
        )
    session = _session(request, deps, "starting")
    session.skipped = {s.target: s.reason for s in plan.skipped}
    session.nodes = {
        m.node.name: NodeCapture(
            node=m.node.name, instance_id=m.node.instance_id, matched_by="; ".join(m.matched_by)
        )
        for m in plan.chosen
    }
    if existing is None:
        store.create_session(session)
    lock_until = session.expires_at + timedelta(seconds=settings.upload_grace_seconds)
    with ThreadPoolExecutor(max_workers=1) as background:
        every_pod = raw_pods if request.needs_pods and request.pod_namespace is None else None
        context = background.submit(_snapshot, request, raw_nodes, every_pod, deps) if plan.chosen else None
        with ThreadPoolExecutor(max_workers=settings.api_parallelism) as pool:
            results = list(
                pool.map(lambda m: _start_node(m, request, cluster, lock_until, deps, recorders), plan.chosen)
            )
    for match, (node, skipped_reason) in zip(plan.chosen, results, strict=True):
        if skipped_reason is not None:
            del session.nodes[match.node.name]
            session.skipped[match.node.name] = skipped_reason
        else:
            session.nodes[match.node.name] = node
    started = [n for n in session.nodes.values() if n.status in ("pending", "running")]
    if started and context is not None:
        _store_context(context.result(), deps)
    if started:
        session.status = "running"
        preset = f" with preset {session.preset}" if session.preset else ""
        recorded = sum(1 for n in started if n.job is None)
        rings = f", {recorded} of them from their recorder's ring" if recorded else ""
        session.verdict = f"capturing on {len(started)} node(s){rings}{preset}"
    else:
        store.release_capture_slot(request.cluster, slot, request.capture_id)
        session.status = "failed"
        reasons = "; ".join(f"{k}: {v}" for k, v in session.skipped.items()) or "; ".join(plan.notes)
        session.verdict = f"no node could be captured ({reasons or 'no node matched'})"
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
        extra={
            "capture_id": session.capture_id,
            "cluster": session.cluster,
            "nodes": outcome.nodes,
            "skipped": outcome.skipped,
            "notes": list(plan.notes),
        },
    )
    return outcome


def _narrowed_to_pods(request: _Request, raw_pods: list[dict[str, Any]]) -> _Request:
    """The pod-traffic preset's filter: the named pods' addresses (their nodes' traffic when none)."""
    hosts = pod_hosts_filter(request.metrics, [pod_entry(p) for p in raw_pods])
    return replace(request, options=replace(request.options, filter=hosts, narrow_to_pods=False))


def _snapshot(
    request: _Request, raw_nodes: list[dict[str, Any]], raw_pods: list[dict[str, Any]] | None, deps: Deps
) -> ClusterContext | None:
    """Who is who in the cluster as the capture starts (from the lists already made, where there are
    some); None (logged) when the cluster would not say."""
    try:
        return snapshot(
            deps.cluster(request.cluster),
            taken_at=deps.now(),
            capture_id=request.capture_id,
            nodes=raw_nodes,
            pods=raw_pods,
        )
    except (CaptureError, ApiException, ValueError) as error:
        logger.warning(
            "no cluster context for this capture: findings will name IPs only",
            extra={"capture_id": request.capture_id, "error": str(error)},
        )
        return None


def _store_context(context: ClusterContext | None, deps: Deps) -> None:
    """Keep the snapshot beside the capture's pcaps; a failure costs names in findings, not the capture."""
    if context is None:
        return
    try:
        key = store_context(deps.s3, deps.settings.capture_bucket, context)
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


def _start_node(
    match: NodeMatch,
    request: _Request,
    cluster: Cluster,
    lock_until: datetime,
    deps: Deps,
    recorders: dict[str, RecorderPod] | None = None,
) -> tuple[NodeCapture, str | None]:
    """Claim one node and create its Job: (the node's record, None) or (_, why it was skipped)."""
    node = match.node
    record = NodeCapture(node=node.name, instance_id=node.instance_id, matched_by="; ".join(match.matched_by))
    holder = deps.store.acquire_node(request.cluster, node.name, request.capture_id, lock_until, deps.now())
    if holder is not None:
        return record, f"already being captured by {holder}"
    if recorders and node.name in recorders:
        return _ask_recorder(record, recorders[node.name], request, cluster, deps), None
    job = capture_job(_spec(request), node, deps.settings)
    try:
        cluster.create_job(deps.settings.capture_namespace, job)
    except CaptureError as error:
        deps.store.release_node(request.cluster, node.name, request.capture_id)
        return record.model_copy(update={"status": "failed", "reason": error.message}), None
    return record.model_copy(update={"job": job_name(request.capture_id, node.name)}), None


def _ask_recorder(
    record: NodeCapture, recorder: RecorderPod, request: _Request, cluster: Cluster, deps: Deps
) -> NodeCapture:
    """The node's recorder uploads the window instead of a Job starting there (no pod start delay)."""
    window = plan_window(
        request.trigger_at or request.started_at,
        DEFAULT_LOOKBACK_SECONDS if request.lookback_seconds is None else request.lookback_seconds,
        request.options.duration_seconds,
        recorder.ring_seconds,
    )
    try:
        request_window(cluster, deps.settings.capture_namespace, recorder, request.capture_id, window)
    except (CaptureError, ApiException) as error:
        deps.store.release_node(request.cluster, record.node, request.capture_id)
        reason = error.message if isinstance(error, CaptureError) else str(error.reason)
        return record.model_copy(update={"status": "failed", "reason": f"recorder {recorder.name}: {reason}"})
    reason = f"recorder {recorder.name} asked for its window; {window.note}"
    return record.model_copy(update={"status": "running", "reason": reason})


def switch_recorder(event: StartRecorder | StopRecorder, deps: Deps) -> Outcome:
    """Start Recorder creates or updates the recorder DaemonSet; Stop Recorder deletes it."""
    cluster = deps.cluster(event.detail.cluster)
    if isinstance(event, StartRecorder):
        done = enable(event, cluster, deps.settings)
        return Outcome("recording", f"recorder {done} in cluster {event.detail.cluster}")
    deleted = disable(event, cluster, deps.settings)
    state = "stopped" if deleted else "was not running"
    return Outcome("stopped", f"recorder {state} in cluster {event.detail.cluster}")


def stop_capture(capture_id: str, reason: str, deps: Deps) -> Outcome:
    """End a capture early: its Jobs are deleted gracefully so each uploader flushes its last file."""
    session = deps.store.get_session(capture_id)
    if session is None:
        raise CaptureNotFound(capture_id)
    if session.status in FINAL_STATES:
        return Outcome(
            session.status, f"capture {capture_id} has already ended ({session.status})", capture_id
        )
    cluster = deps.cluster(session.cluster)
    namespace = deps.settings.capture_namespace
    deleted = [
        job["metadata"]["name"]
        for job in cluster.capture_jobs(namespace, capture_selector(CaptureId(capture_id)))
        if cluster.delete_job(namespace, job["metadata"]["name"])
    ]
    deps.store.set_status(
        capture_id, "stopping", verdict=f"stopped early: {reason}", only_from=("starting", "running")
    )
    logger.info(f"capture {capture_id} stopping: {len(deleted)} job(s) deleted", extra={"jobs": deleted})
    return Outcome(
        "stopping", f"stopping capture {capture_id}: {reason}", capture_id, dict.fromkeys(deleted, "stopping")
    )
