"""Who was who in the cluster when a capture started: pods, services and nodes, stored beside the pcaps.

Pod IPs are reused within minutes, so a finding about ``10.0.3.7`` is only useful with the name that
address had during the capture. The trigger takes one snapshot per capture (one paginated list per
kind, never one call per node), bounded in size, and stores it at
``captures/<cluster>/<capture-id>/context.json.gz``; the indexer and ``eks-capture analyze --context``
turn it into the IP -> name mapping the analyzer writes into findings and top talkers.
"""

from __future__ import annotations

import gc
import gzip
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer

from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.times import iso_utc

if TYPE_CHECKING:
    from eks_capture.kube.calls import Cluster  # typing only: reading a context never loads the client

SCHEMA_VERSION = 1
CONTEXT_NAME = "context.json.gz"
DNS_SERVICE_LABELS = {"k8s-app": "kube-dns"}
FINISHED_PHASES = ("Succeeded", "Failed")

logger = Logger(child=True)


@dataclass(frozen=True)
class Limits:
    """The most entries of each kind a snapshot keeps (20,000 pods store as ~230 KB of gzip JSON)."""

    pods: int = 50_000
    services: int = 20_000
    nodes: int = 5_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PodEntry(_Frozen):
    """A pod as the snapshot saw it; ``workload`` is its Deployment (or other owner)."""

    namespace: str
    name: str
    workload: str | None = None
    node: str | None = None
    ips: list[str] = []
    host_network: bool = False
    phase: str | None = None


class ServicePort(_Frozen):
    port: int
    protocol: str = "TCP"
    name: str | None = None


class ServiceEntry(_Frozen):
    """A Service's cluster IPs and ports; ``cluster_dns`` marks the cluster's DNS service."""

    namespace: str
    name: str
    cluster_ips: list[str] = []
    ports: list[ServicePort] = []
    cluster_dns: bool = False


class NodeEntry(_Frozen):
    name: str
    instance_id: str | None = None
    zone: str | None = None
    ips: list[str] = []


class ClusterContext(_Frozen):
    """A cluster as a capture saw it: one snapshot at its start, merged with one at its end
    (``refreshed_at``) for long captures; ``truncated`` names the kinds cut at their limit."""

    schema_version: int = SCHEMA_VERSION
    cluster: str
    capture_id: str | None = None
    taken_at: datetime
    refreshed_at: datetime | None = None
    nodes: list[NodeEntry] = []
    pods: list[PodEntry] = []
    services: list[ServiceEntry] = []
    truncated: list[str] = []

    @field_serializer("taken_at", "refreshed_at")
    def _iso_utc(self, value: datetime | None) -> str | None:
        return iso_utc(value, micros=True) if value is not None else None

    def names(self) -> dict[str, str]:
        """IP -> name for findings: services first, then running pods, nodes, and finished pods last.

        Two running pods with one address (it was reused between the start and the end of the capture)
        are both named: ``payments/api-1 or payments/web-2``.
        """
        names: dict[str, str] = {}
        for pod in self.pods:
            if pod.phase in FINISHED_PHASES and not pod.host_network:
                names.update(dict.fromkeys(pod.ips, f"{pod.namespace}/{pod.name}"))
        for node in self.nodes:
            names.update(dict.fromkeys(node.ips, f"node {node.name}"))
        running: dict[str, list[str]] = {}
        for pod in self.pods:
            if pod.phase not in FINISHED_PHASES and not pod.host_network:
                for ip in pod.ips:
                    running.setdefault(ip, []).append(f"{pod.namespace}/{pod.name}")
        names.update((ip, " or ".join(held_by)) for ip, held_by in running.items())
        for service in self.services:
            names.update(dict.fromkeys(service.cluster_ips, f"{service.namespace}/{service.name} service"))
        return names


def pod_entry(pod: Mapping[str, Any]) -> PodEntry:
    """A pod in the API's JSON form, reduced to who it is and where."""
    info = PodInfo.from_kubernetes(pod)
    status = pod.get("status") or {}
    ips = [str(entry["ip"]) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return PodEntry(
        namespace=info.namespace,
        name=info.name,
        workload=info.workload,
        node=info.node_name,
        ips=ips,
        host_network=bool((pod.get("spec") or {}).get("hostNetwork")),
        phase=status.get("phase"),
    )


def service_entry(service: Mapping[str, Any]) -> ServiceEntry:
    """A Service in the API's JSON form, reduced to its addresses and ports."""
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    labels = metadata.get("labels") or {}
    return ServiceEntry(
        namespace=str(metadata.get("namespace") or "default"),
        name=str(metadata["name"]),
        cluster_ips=ips,
        ports=[
            ServicePort(port=int(p["port"]), protocol=str(p.get("protocol") or "TCP"), name=p.get("name"))
            for p in spec.get("ports") or []
        ],
        cluster_dns=all(labels.get(k) == v for k, v in DNS_SERVICE_LABELS.items()),
    )


def node_entry(node: Mapping[str, Any]) -> NodeEntry:
    """A Node in the API's JSON form, reduced to its addresses, instance and zone."""
    info = NodeInfo.from_kubernetes(node)
    return NodeEntry(
        name=info.name,
        instance_id=info.instance_id,
        zone=info.zone,
        ips=[a.address for a in info.addresses if a.type in ("InternalIP", "ExternalIP")],
    )


def _bounded(
    items: Iterable[Mapping[str, Any]], reduce: Callable[[Mapping[str, Any]], Any], limit: int
) -> tuple[list[Any], bool]:
    kept: list[Any] = []
    for item in items:
        if len(kept) == limit:
            return kept, True
        kept.append(reduce(item))
    return kept, False


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector while a snapshot is built or read: parsed JSON and the snapshot hold no
    cycles, yet the collector's full passes over them cost ~0.6 s of 2.4 s at 20,000 pods."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def snapshot(
    cluster: Cluster,
    *,
    taken_at: datetime,
    capture_id: str | None = None,
    nodes: Iterable[Mapping[str, Any]] | None = None,
    pods: Iterable[Mapping[str, Any]] | None = None,
    limits: Limits = Limits(),
) -> ClusterContext:
    """The cluster's pods, services and nodes now: one paginated list per kind, none for a kind the
    caller listed already (``nodes``; ``pods`` of every namespace)."""

    def bounded(
        path: str,
        given: Iterable[Mapping[str, Any]] | None,
        reduce: Callable[[Mapping[str, Any]], Any],
        limit: int,
    ) -> tuple[list[Any], bool]:
        """The first ``limit`` items reduced, and whether more were left out; listed unless given."""
        if given is not None:
            return _bounded(given, reduce, limit)
        return cluster.collect(
            path, f"list {path.rsplit('/', 1)[1]}", lambda items: _bounded(items, reduce, limit)
        )

    with _without_cycle_collection():
        node_list, nodes_cut = bounded("/api/v1/nodes", nodes, node_entry, limits.nodes)
        pod_list, pods_cut = bounded("/api/v1/pods", pods, pod_entry, limits.pods)
        services, services_cut = bounded("/api/v1/services", None, service_entry, limits.services)
    cut = {"nodes": nodes_cut, "pods": pods_cut, "services": services_cut}
    return ClusterContext(
        cluster=cluster.name,
        capture_id=capture_id,
        taken_at=taken_at,
        nodes=node_list,
        pods=pod_list,
        services=services,
        truncated=[kind for kind, was_cut in cut.items() if was_cut],
    )


def context_key(cluster: str, capture_id: str) -> str:
    """Where a capture's context lives in the capture bucket (docs/design.md)."""
    return f"captures/{cluster}/{capture_id}/{CONTEXT_NAME}"


def encode(context: ClusterContext) -> bytes:
    """The stored form: compact JSON, gzip-compressed."""
    return gzip.compress(context.model_dump_json(exclude_defaults=True).encode(), compresslevel=6)


def decode(raw: bytes) -> ClusterContext:
    """A stored context (gzip or plain JSON); ValueError when it is not one."""
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    try:
        with _without_cycle_collection():
            return ClusterContext.model_validate_json(data)
    except ValidationError as error:
        raise ValueError(f"not a cluster context: {error.errors()[0]['msg']}") from None


def store_context(s3: Any, bucket: str, context: ClusterContext) -> str:
    """Write a capture's context to the capture bucket; the key it was written to."""
    if context.capture_id is None:
        raise ValueError("a stored context belongs to a capture: capture_id is required")
    key = context_key(context.cluster, context.capture_id)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=encode(context),
        ContentType="application/json",
        ContentEncoding="gzip",
        Metadata={"capture-id": context.capture_id, "cluster": context.cluster},
    )
    return key


def merged(earlier: ClusterContext, later: ClusterContext, limits: Limits = Limits()) -> ClusterContext:
    """Both snapshots of one capture: every object either saw (the later entry where both saw it)."""

    def union(first: list[Any], second: list[Any], limit: int) -> tuple[list[Any], bool]:
        entries = {(getattr(e, "namespace", ""), e.name): e for e in first}
        entries.update({(getattr(e, "namespace", ""), e.name): e for e in second})
        kept = list(entries.values())
        return kept[:limit], len(kept) > limit

    pods, pods_cut = union(earlier.pods, later.pods, limits.pods)
    services, services_cut = union(earlier.services, later.services, limits.services)
    nodes, nodes_cut = union(earlier.nodes, later.nodes, limits.nodes)
    cut = {*earlier.truncated, *later.truncated}
    cut |= {
        kind
        for kind, was_cut in (("pods", pods_cut), ("services", services_cut), ("nodes", nodes_cut))
        if was_cut
    }
    return earlier.model_copy(
        update={
            "refreshed_at": later.taken_at,
            "pods": pods,
            "services": services,
            "nodes": nodes,
            "truncated": sorted(cut),
        }
    )


def refresh_context(
    s3: Any, bucket: str, cluster: Cluster, capture_id: str, *, now: datetime
) -> ClusterContext:
    """At the end of a long capture: snapshot again and store it merged with the start's snapshot, so
    pods that came (or took over an address) while it ran are named too."""
    later = snapshot(cluster, taken_at=now, capture_id=capture_id)
    earlier = load_context(s3, bucket, cluster.name, capture_id)
    context = later if earlier is None else merged(earlier, later)
    store_context(s3, bucket, context)
    return context


def load_context(s3: Any, bucket: str, cluster: str, capture_id: str) -> ClusterContext | None:
    """A capture's stored context, or None when it has none (older captures, a failed snapshot)."""
    try:
        response = s3.get_object(Bucket=bucket, Key=context_key(cluster, capture_id))
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return decode(response["Body"].read())


def names_from_document(data: Any) -> dict[str, str]:
    """IP -> name from a stored context or from a plain JSON object of IP -> name; ValueError otherwise."""
    if isinstance(data, Mapping) and "taken_at" in data and "cluster" in data:
        try:
            return ClusterContext.model_validate(data).names()
        except ValidationError as error:
            raise ValueError(f"not a cluster context: {error.errors()[0]['msg']}") from None
    if isinstance(data, Mapping) and all(isinstance(v, str) for v in data.values()):
        return {str(ip): name for ip, name in data.items()}
    raise ValueError("must be a stored cluster context or a JSON object mapping IP address to name")


class ContextCache:
    """IP -> name per capture, each capture's context read from S3 at most once (one per invocation)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self._names: dict[tuple[str, str], dict[str, str] | None] = {}

    def names(self, bucket: str, cluster: str, capture_id: str) -> dict[str, str] | None:
        """The capture's IP -> name mapping, or None when it has none or it cannot be read (logged)."""
        key = (bucket, capture_id)
        if key not in self._names:
            self._names[key] = self._read(bucket, cluster, capture_id)
        return self._names[key]

    def _read(self, bucket: str, cluster: str, capture_id: str) -> dict[str, str] | None:
        try:
            context = load_context(self._s3, bucket, cluster, capture_id)
        except (ClientError, ValueError, OSError) as error:
            where = f"s3://{bucket}/{context_key(cluster, capture_id)}"
            logger.warning(f"cluster context {where} unreadable: findings will name IPs only ({error})")
            return None
        return context.names() if context is not None else None
