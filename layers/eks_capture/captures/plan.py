"""A capture request as the trigger plans it: what was asked, what the trigger talks to, what it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from eks_capture.captures.context import pod_entry
from eks_capture.captures.deps import Deps
from eks_capture.captures.options import CaptureOptions
from eks_capture.captures.presets import pod_hosts_filter
from eks_capture.captures.services import ServiceEndpoints, service_endpoints
from eks_capture.captures.targets import TargetPlan
from eks_capture.events.models import AlarmStateChange, Metric
from eks_capture.ids import CaptureId
from eks_capture.kube.calls import Cluster
from eks_capture.kube.manifests.job import CaptureSpec, expires_at
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.store.sessions import CaptureSession, Trigger

logger = Logger(child=True)

POD_DIMENSIONS = ("PodName", "FullPodName")

Planner = Callable[[list[NodeInfo], list[PodInfo], ServiceEndpoints | None], TargetPlan]


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
class Request:
    """One capture as asked, by an alarm or by hand: the trigger plans, admits and launches it."""

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
    service: str | None = None  # namespace/name: the nodes of its ready endpoints
    service_ports: bool = False  # narrow the filter to the Service's ports
    limited: dict[str, str] = field(default_factory=dict)  # what the alarm caps changed (alarm_limits)


def alarm_tags(event: AlarmStateChange, deps: Deps) -> dict[str, str]:
    if event.detail.alarm_tags is not None and event.detail.alarm_tags_status == "SUCCESS":
        return dict(event.detail.alarm_tags)
    arn = event.resources[0] if event.resources else None
    if arn is None:
        return {}
    try:
        response = deps.aws.cloudwatch.list_tags_for_resource(ResourceARN=arn)
    except deps.aws.cloudwatch.exceptions.ResourceNotFoundException:
        logger.warning(f"alarm {event.alarm_name} no longer exists: capturing with the stack's defaults")
        return {}
    return {tag["Key"]: tag["Value"] for tag in response.get("Tags", [])}


def session_of(request: Request, deps: Deps, status: str, verdict: str = "") -> CaptureSession:
    spec = spec_of(request)
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
        limited=dict(request.limited),
        s3_prefix=f"captures/{request.cluster}/{request.capture_id}/",
        verdict=verdict,
    )


def spec_of(request: Request) -> CaptureSpec:
    return CaptureSpec(
        capture_id=request.capture_id,
        cluster=request.cluster,
        options=request.options,
        reason=request.trigger.reason,
        started_at=request.started_at,
    )


def named_service(request: Request, cluster: Cluster) -> ServiceEndpoints | None:
    """The Service the request names, with its EndpointSlices (None when it names none)."""
    if request.service is None:
        return None
    namespace, _slash, name = request.service.partition("/")
    found = cluster.service(namespace, name)
    return service_endpoints(
        request.service, found, cluster.endpoint_slices(namespace, name) if found else []
    )


def narrowed_to_service(request: Request, service: ServiceEndpoints) -> Request:
    """The filter narrowed to the Service's ports (and to the request's own filter, when it has one)."""
    ports = service.ports_filter()
    if ports is None:
        return request
    given = request.options.filter
    narrowed = f"({given}) and ({ports})" if given else ports
    return replace(request, options=replace(request.options, filter=narrowed))


def narrowed_to_pods(request: Request, raw_pods: list[dict[str, Any]]) -> Request:
    """The pod-traffic preset's filter: the named pods' addresses (their nodes' traffic when none)."""
    hosts = pod_hosts_filter(request.metrics, [pod_entry(p) for p in raw_pods])
    return replace(request, options=replace(request.options, filter=hosts, narrow_to_pods=False))
