"""From an alarm or a start request and a snapshot of the cluster, the nodes to capture on (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from eks_capture.captures.services import ServiceEndpoints
from eks_capture.events.models import AlarmStateChange, Metric, StartCaptureDetail
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.kube.selectors import PodSelector
from eks_capture.settings import NodeFallback

GONE = "gone: not in the cluster"
NOT_READY = "NotReady"
NODE_DIMENSIONS = ("InstanceId", "NodeName", "AutoScalingGroupName", "PodName", "FullPodName")


def over_cap(max_nodes: int) -> str:
    """The skip reason for a node beyond the per-capture cap."""
    return f"over the cap of {max_nodes} nodes per capture"


@dataclass(frozen=True)
class NodeMatch:
    """A chosen node and, in words, every way it was matched."""

    node: NodeInfo
    matched_by: tuple[str, ...]


@dataclass(frozen=True)
class SkippedNode:
    """A node (or what named one: an instance id, a dimension) left out, and why in words."""

    target: str
    reason: str


@dataclass(frozen=True)
class TargetPlan:
    """The nodes to capture on, those left out with a reason, and notes on how the choice was made."""

    chosen: tuple[NodeMatch, ...]
    skipped: tuple[SkippedNode, ...] = ()
    notes: tuple[str, ...] = ()
    fallback: NodeFallback | None = None

    @property
    def node_names(self) -> tuple[str, ...]:
        """Names of the chosen nodes, in plan order."""
        return tuple(match.node.name for match in self.chosen)

    def skip(self, node_name: str, reason: str) -> TargetPlan:
        """This plan with a chosen node moved to skipped (e.g. ``already capturing in cap-...``)."""
        if node_name not in self.node_names:
            raise KeyError(node_name)
        return replace(
            self,
            chosen=tuple(m for m in self.chosen if m.node.name != node_name),
            skipped=(*self.skipped, SkippedNode(node_name, reason)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan as a JSON-ready dict for the capture session item and logs."""
        return {
            "nodes": [
                {"node": m.node.name, "instance_id": m.node.instance_id, "matched_by": list(m.matched_by)}
                for m in self.chosen
            ],
            "skipped": [{"target": s.target, "reason": s.reason} for s in self.skipped],
            "notes": list(self.notes),
            "fallback": self.fallback.value if self.fallback else None,
        }


class _Collector:
    """Accumulates matches per node name, things that matched nothing, and notes."""

    def __init__(self, nodes: Iterable[NodeInfo]) -> None:
        self.nodes = {node.name: node for node in nodes}
        self.matched: dict[str, list[str]] = {}
        self.gone: list[SkippedNode] = []
        self.notes: list[str] = []

    def add(self, names: Iterable[str], how: str) -> None:
        for name in names:
            reasons = self.matched.setdefault(name, [])
            if how not in reasons:
                reasons.append(how)

    def plan(self, max_nodes: int, fallback: NodeFallback | None = None) -> TargetPlan:
        chosen: list[NodeMatch] = []
        skipped = list(self.gone)
        for name in sorted(self.matched):
            node = self.nodes[name]
            if node.cannot_capture is not None:
                skipped.append(SkippedNode(name, node.cannot_capture))
            elif not node.ready:
                skipped.append(SkippedNode(name, NOT_READY))
            elif len(chosen) >= max_nodes:
                skipped.append(SkippedNode(name, over_cap(max_nodes)))
            else:
                chosen.append(NodeMatch(node, tuple(self.matched[name])))
        return TargetPlan(tuple(chosen), tuple(skipped), tuple(self.notes), fallback)


def _pods_matching(
    pods: Iterable[PodInfo], pod_name: str, namespace: str | None, *, exact: bool
) -> list[PodInfo]:
    """Pods a PodName dimension names: the pod itself or, as Container Insights reports it, its workload."""
    return [
        pod
        for pod in pods
        if (namespace is None or pod.namespace == namespace)
        and (pod.name == pod_name or (not exact and pod.workload == pod_name))
    ]


def _asg_nodes(nodes: Iterable[NodeInfo], asg: str) -> set[str]:
    """Nodes of an Auto Scaling group: those whose instance EC2 tags as its member (captures/groups.py)."""
    return {node.name for node in nodes if node.asg_name == asg}


def _metric_nodes(metric: Metric, nodes: list[NodeInfo], pods: list[PodInfo]) -> tuple[set[str], list[str]]:
    """Nodes one metric's dimensions name (all its node dimensions must agree) and the dimensions used."""
    dims = metric.dimensions
    sets: list[set[str]] = []
    used: list[str] = []
    if "InstanceId" in dims:
        sets.append({n.name for n in nodes if n.instance_id == dims["InstanceId"]})
        used.append(f"InstanceId={dims['InstanceId']}")
    if "NodeName" in dims:
        sets.append({n.name for n in nodes if n.name == dims["NodeName"]})
        used.append(f"NodeName={dims['NodeName']}")
    if "AutoScalingGroupName" in dims:
        sets.append(_asg_nodes(nodes, dims["AutoScalingGroupName"]))
        used.append(f"AutoScalingGroupName={dims['AutoScalingGroupName']}")
    for key, exact in (("FullPodName", True), ("PodName", False)):
        if key in dims:
            hosting = _pods_matching(pods, dims[key], dims.get("Namespace"), exact=exact)
            sets.append({p.node_name for p in hosting if p.node_name})
            used.append(f"{key}={dims.get('Namespace', '*')}/{dims[key]}")
    if not sets:
        return set(), []
    return set.intersection(*sets), used


def targets_for_alarm(
    alarm: AlarmStateChange,
    nodes: Iterable[NodeInfo],
    pods: Iterable[PodInfo],
    *,
    cluster: str,
    fallback: NodeFallback,
    max_nodes: int,
    service: ServiceEndpoints | None = None,
) -> TargetPlan:
    """The nodes an alarm names across all its metrics (and its ``eks-capture:service`` tag's Service);
    the fallback when it names none."""
    node_list, pod_list = list(nodes), list(pods)
    found = _Collector(node_list)
    named_any = False
    if alarm.is_composite:
        found.notes.append("composite alarm: its rule names other alarms, not nodes")
    for query in alarm.detail.configuration.metrics:
        if query.metric_stat is None:
            continue
        metric = query.metric_stat.metric
        where = f"metric {query.id} {metric.namespace}/{metric.name}"
        other_cluster = metric.dimensions.get("ClusterName")
        if other_cluster is not None and other_cluster != cluster:
            found.notes.append(f"{where} is about cluster {other_cluster}, not {cluster}: ignored")
            continue
        matched, used = _metric_nodes(metric, node_list, pod_list)
        if not used:
            found.notes.append(f"{where} names no node ({_dimension_words(metric)})")
            continue
        named_any = True
        if matched:
            found.add(matched, f"{' '.join(used)} ({where})")
        else:
            found.gone.append(
                SkippedNode(" ".join(used), f"gone: no node in cluster {cluster} matches ({where})")
            )
    if service is not None:
        _add_service_nodes(found, service)
        named_any = True
    if named_any:
        return found.plan(max_nodes)
    if fallback is NodeFallback.ALL:
        found.add((n.name for n in node_list), "fallback: the alarm names no node, NODE_FALLBACK is all")
    else:
        found.notes.append("the alarm names no node and the fallback is none: nothing to capture")
    return found.plan(max_nodes, fallback)


def _dimension_words(metric: Metric) -> str:
    dims = metric.dimensions
    return ", ".join(f"{key}={value}" for key, value in sorted(dims.items())) or "no dimensions"


def targets_for_request(
    request: StartCaptureDetail,
    nodes: Iterable[NodeInfo],
    pods: Iterable[PodInfo],
    *,
    max_nodes: int,
    service: ServiceEndpoints | None = None,
) -> TargetPlan:
    """The nodes a manual Start Capture names, by every target kind it uses (``service``: the Service
    it names, as the cluster has it)."""
    node_list = list(nodes)
    found = _Collector(node_list)
    targets = request.targets
    if targets.all:
        found.add((n.name for n in node_list), "all nodes")
    for name in targets.nodes:
        if name in found.nodes:
            found.add([name], "node name")
        else:
            found.gone.append(SkippedNode(name, GONE))
    by_instance = {n.instance_id: n.name for n in node_list if n.instance_id}
    for instance_id in targets.instance_ids:
        if instance_id in by_instance:
            found.add([by_instance[instance_id]], f"instance id {instance_id}")
        else:
            found.gone.append(SkippedNode(instance_id, f"gone: no node has instance id {instance_id}"))
    if targets.node_selector is not None:
        selector = targets.node_selector
        chosen = [n.name for n in node_list if selector.matches(n.labels)]
        found.add(chosen, f"node selector {selector.to_selector_string()}")
        if not chosen:
            found.notes.append(f"node selector {selector.to_selector_string()} matches no node")
    if targets.pod_selector is not None:
        _add_pod_selector_nodes(found, targets.pod_selector, pods)
    if service is not None:
        _add_service_nodes(found, service)
    return found.plan(max_nodes)


def _add_service_nodes(found: _Collector, service: ServiceEndpoints) -> None:
    """The nodes of a Service's ready endpoints; endpoints not ready or not on a node are noted."""
    words = f"service {service.ref}"
    if not service.found:
        found.gone.append(
            SkippedNode(words, f"gone: no service {service.name} in namespace {service.namespace}")
        )
        return
    for endpoint in service.endpoints:
        if not endpoint.ready:
            found.notes.append(f"{words}: endpoint {endpoint.address} is not ready: its node is not captured")
        elif endpoint.node is None:
            found.notes.append(f"{words}: endpoint {endpoint.address} names no node")
        elif endpoint.node not in found.nodes:
            found.gone.append(SkippedNode(endpoint.node, f"{GONE} (endpoint {endpoint.address} of {words})"))
        else:
            found.add([endpoint.node], f"{words}: endpoint {endpoint.address}")
    if not any(e.ready for e in service.endpoints):
        found.notes.append(f"{words} has no ready endpoint")


def _add_pod_selector_nodes(found: _Collector, selector: PodSelector, pods: Iterable[PodInfo]) -> None:
    words = f"pod selector {selector.namespace}/{selector.to_selector_string()}"
    matching = [p for p in pods if p.namespace == selector.namespace and selector.matches(p.labels)]
    for pod in matching:
        if pod.node_name is None:
            found.notes.append(f"pod {pod.namespace}/{pod.name} is not scheduled on a node yet")
        elif pod.node_name not in found.nodes:
            found.gone.append(SkippedNode(pod.node_name, f"{GONE} (hosted pod {pod.namespace}/{pod.name})"))
        else:
            found.add([pod.node_name], f"{words}: pod {pod.name}")
    if not matching:
        found.notes.append(f"{words} matches no pod")
