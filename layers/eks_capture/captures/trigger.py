"""From an alarm or a manual request to capture Jobs on the affected nodes, every decision recorded.

Idempotent by construction: the capture id is derived from the EventBridge event id, so a redelivered
event finds its own session (and its Jobs answer 409); a different event for a node already being
captured loses the node lock in DynamoDB; an alarm in its cooldown is refused, with the reason stored.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger

from eks_capture.captures.admit import (
    active_captures,
    claim_cooldown,
    claim_slot,
    cooldown_holder,
    duplicate,
    free_unused_cooldown,
    reject,
    reject_started,
)
from eks_capture.captures.alarm_limits import AlarmLimits, bound_alarm_options, refused_cluster
from eks_capture.captures.deps import Deps
from eks_capture.captures.groups import group_members, named_groups
from eks_capture.captures.launch import launch, node_record, snapshot_context
from eks_capture.captures.options import (
    TAG_CLUSTER,
    CaptureOptions,
    alarm_cluster,
    capture_options_for_alarm,
    capture_options_for_request,
)
from eks_capture.captures.plan import (
    POD_DIMENSIONS,
    Outcome,
    Request,
    alarm_tags,
    named_service,
    narrowed_to_pods,
    narrowed_to_service,
    session_of,
)
from eks_capture.captures.record import record_retry, record_start
from eks_capture.captures.recorder import (
    DEFAULT_LOOKBACK_SECONDS,
    alarm_lookback,
    disable,
    enable,
    find_recorders,
)
from eks_capture.captures.targets import targets_for_alarm, targets_for_request
from eks_capture.errors import CaptureNotFound, CaptureRejected, NodeLocksNotTaken
from eks_capture.events.models import (
    AlarmStateChange,
    StartCapture,
    StartRecorder,
    StopCapture,
    StopRecorder,
    parse_event,
)
from eks_capture.ids import CaptureId, capture_id_for_event
from eks_capture.kube.jobs import jobs_of_capture
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.settings import Settings
from eks_capture.store.sessions import Trigger

logger = Logger(child=True)

FINAL_STATES = ("completed", "failed", "rejected")
#: The AWS clients the trigger may call besides the index's DynamoDB, which a warm container holds. Its
#: function makes none of them at cold start: each is made at its first use, as few alarms need them all
#: and most starts are cold (alarms are rare) — EC2 only for an alarm on AutoScalingGroupName (~80 ms to
#: make), CloudWatch only for an alarm whose event lacks its tags or a recorder's lookback, S3 and SNS
#: only after the Jobs are created (the context snapshot, the start notice).
AWS_CLIENTS = ("cloudwatch", "ec2", "s3", "sns")
NO_IMAGE = (
    "the stack has no capture image yet: push it with scripts/build-image.sh and deploy again with the "
    "CaptureImageUri it prints"
)


def handle(raw: dict[str, Any], deps: Deps) -> Outcome:
    """Parse one trigger event and act on it; CaptureRejected for anything malformed (nothing created)."""
    settings = deps.settings
    event = parse_event(
        raw, max_duration_seconds=settings.max_duration_seconds, expected_account=settings.expected_account
    )
    if settings.capture_image is None and not isinstance(event, StopCapture | StopRecorder):
        raise CaptureRejected("CaptureImageUri", NO_IMAGE)
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


def start_from_alarm(event: AlarmStateChange, deps: Deps) -> Outcome:
    """An alarm in ALARM starts a capture on the nodes its metrics name (or the fallback)."""
    settings = deps.settings
    if not event.is_alarm:
        return Outcome("ignored", f"alarm {event.alarm_name} is {event.detail.state.value}, not ALARM")
    if not settings.watches_alarm(event.alarm_name):
        return Outcome("ignored", f"alarm {event.alarm_name} lacks the prefix {settings.alarm_name_prefix!r}")
    tags = alarm_tags(event, deps)
    asked = capture_options_for_alarm(
        event, tags, CaptureOptions.defaults(settings), max_duration_seconds=settings.max_duration_seconds
    )
    cluster = _served(
        alarm_cluster(event, asked, settings.default_cluster),
        f"tags.{TAG_CLUSTER}" if asked.cluster is not None else "detail.configuration.metrics",
        settings,
    )
    limits = AlarmLimits.from_settings(settings)
    bounded = bound_alarm_options(asked, tags, limits)
    options = bounded.options
    refusal = refused_cluster(cluster, limits)
    capture_id = capture_id_for_event(event.id, event.time)
    now = deps.now()
    trigger = Trigger(
        kind="alarm",
        reason=f"alarm {event.alarm_name}: {event.detail.state.reason}"[:1024],
        event_id=event.id,
        alarm_name=event.alarm_name,
        alarm_arn=event.resources[0] if event.resources else None,
    )
    request = Request(
        capture_id=capture_id,
        cluster=cluster,
        options=options,
        trigger=trigger,
        planner=lambda nodes, pods, service: targets_for_alarm(
            event,
            nodes,
            pods,
            cluster=cluster,
            fallback=options.fallback,
            max_nodes=settings.max_nodes_per_capture,
            service=service,
        ),
        pod_namespace=None,
        needs_pods=options.narrow_to_pods
        or any(d in m.dimensions for m in event.metrics for d in POD_DIMENSIONS),
        started_at=now,
        metrics=event.metrics,
        trigger_at=event.detail.state.timestamp,
        limited=bounded.limited if refusal is None else {**bounded.limited, "cluster": refusal},
        service=options.service,
        service_ports=options.service_ports,
    )
    if bounded.limited:
        logger.info(
            f"alarm {event.alarm_name} asked beyond the stack's alarm caps",
            extra={"capture_id": capture_id, "limited": request.limited},
        )
    if refusal is not None:
        return reject(request, refusal, deps)
    holder = claim_cooldown(request, deps)
    if holder is not None and deps.store.get_session(capture_id) is None:  # else a retry: start() decides
        return reject(request, cooling_down(event.alarm_name, holder), deps)
    try:
        outcome = start(request, deps)
    except NodeLocksNotTaken:  # its session is stored: the cooldown stays held for Lambda's retry
        raise
    except Exception:  # nothing started when no session was stored (e.g. the cluster said 401)
        free_unused_cooldown(request, deps)
        raise
    if outcome.status not in ("running", "duplicate"):
        deps.store.release_cooldown(event.alarm_name, capture_id)
    return outcome


def cooling_down(alarm_name: str | None, holder: str) -> str:
    """Why an alarm's capture is refused during its cooldown."""
    return f"alarm {alarm_name} is cooling down after capture {holder}"


def start_from_request(event: StartCapture, deps: Deps) -> Outcome:
    """A manual Start Capture: the nodes it names by any target kind."""
    settings = deps.settings
    detail = event.detail
    options = capture_options_for_request(detail, CaptureOptions.defaults(settings))
    selector = detail.targets.pod_selector
    request = Request(
        capture_id=capture_id_for_event(event.id, event.time),
        cluster=detail.cluster,
        options=options,
        trigger=Trigger(
            kind="manual", reason=detail.reason, event_id=event.id, requested_by=detail.requested_by
        ),
        planner=lambda nodes, pods, service: targets_for_request(
            detail, nodes, pods, max_nodes=settings.max_nodes_per_capture, service=service
        ),
        pod_namespace=selector.namespace if selector else None,
        needs_pods=selector is not None,
        started_at=deps.now(),
        lookback_seconds=detail.lookback_seconds,
        service=detail.targets.service,
        service_ports=detail.targets.service_ports,
    )
    return start(request, deps)


def start(request: Request, deps: Deps) -> Outcome:
    """Plan the nodes, check the caps, claim each node and create its Job, and record it all."""
    settings, store = deps.settings, deps.store
    existing = store.get_session(request.capture_id)
    if existing is not None and existing.status != "starting":
        return duplicate(existing)
    cluster = deps.cluster(request.cluster)
    raw_nodes = cluster.nodes()
    nodes = [NodeInfo.from_kubernetes(n) for n in raw_nodes]
    groups = named_groups(request.metrics)
    if groups:  # an alarm on AutoScalingGroupName: its members as EC2 tags them
        members = group_members(deps.aws.ec2, groups)
        nodes = [replace(node, asg_name=members.get(node.instance_id or "")) for node in nodes]
    raw_pods = cluster.pods(request.pod_namespace) if request.needs_pods else []
    pods = [PodInfo.from_kubernetes(p) for p in raw_pods]
    if request.options.narrow_to_pods:
        request = narrowed_to_pods(request, raw_pods)
    service = named_service(request, cluster)
    if service is not None and request.service_ports:
        request = narrowed_to_service(request, service)
    plan = request.planner(nodes, pods, service)
    active = active_captures(cluster, settings.capture_namespace, request.capture_id)
    cluster_wide = raw_pods if request.needs_pods and request.pod_namespace is None else None
    recorders = find_recorders(cluster, settings.capture_namespace, cluster_wide)
    if recorders and request.lookback_seconds is None:
        alarm = request.trigger.alarm_name
        lookback = alarm_lookback(deps.aws.cloudwatch, alarm) if alarm else DEFAULT_LOOKBACK_SECONDS
        request = replace(request, lookback_seconds=lookback)
    if len(active) >= settings.max_concurrent_captures:
        return reject(
            request,
            f"{len(active)} captures already running (the cap is {settings.max_concurrent_captures}): "
            + ", ".join(sorted(active)),
            deps,
        )
    slot = claim_slot(request, cluster, deps)
    if slot is None:
        cap = settings.max_concurrent_captures
        return reject(
            request, f"all {cap} capture slots are taken by starting captures (the cap is {cap})", deps
        )
    session = session_of(request, deps, "starting")
    session.skipped = {s.target: s.reason for s in plan.skipped}
    session.nodes = {m.node.name: node_record(m) for m in plan.chosen}
    session.attempted_at = deps.now()
    if existing is None:
        store.create_session(session)
    elif not store.replace_session(session, expected_status="starting"):  # a retry the sweep closed meanwhile
        return duplicate(store.get_session(request.capture_id) or existing)
    holder = cooldown_holder(request, existing is not None, cluster, deps)  # again, the session stored
    if holder is not None:
        return reject_started(session, slot, cooling_down(request.trigger.alarm_name, holder), deps)
    lock_until = session.expires_at + timedelta(seconds=settings.upload_grace_seconds)
    with ThreadPoolExecutor(max_workers=1) as background:
        every_pod = raw_pods if request.needs_pods and request.pod_namespace is None else None
        context = (
            background.submit(snapshot_context, request, raw_nodes, every_pod, deps) if plan.chosen else None
        )
        launched = launch(plan.chosen, request, cluster, lock_until, deps, recorders)
    for match, (node, skipped_reason) in zip(plan.chosen, launched.results, strict=True):
        if skipped_reason is not None:
            del session.nodes[match.node.name]
            session.skipped[match.node.name] = skipped_reason
        else:
            session.nodes[match.node.name] = node
    refused = [refusal.why for refusal in launched.refusals]  # DynamoDB's words, once each
    if launched.worth_retrying:
        record_retry(session, refused, deps)
    snapshot = context.result() if context is not None else None
    return record_start(session, plan, request, slot, snapshot, deps, refused)


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
        job.name
        for job in jobs_of_capture(cluster, namespace, CaptureId(capture_id))
        if cluster.delete_job(namespace, job.name)
    ]
    deps.store.set_status(
        capture_id, "stopping", verdict=f"stopped early: {reason}", only_from=("starting", "running")
    )
    logger.info(f"capture {capture_id} stopping: {len(deleted)} job(s) deleted", extra={"jobs": deleted})
    return Outcome(
        "stopping", f"stopping capture {capture_id}: {reason}", capture_id, dict.fromkeys(deleted, "stopping")
    )
