"""What an alarm watches decides how to capture: the preset table of docs/presets.md (pure).

A preset sits between the stack's defaults and the alarm's ``eks-capture:*`` tags: it is used for what
the tags leave unsaid, and ``eks-capture:preset`` picks another one or ``none``. The first metric of the
alarm (in its configuration's order) that a preset lists decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eks_capture.captures.context import FINISHED_PHASES, PodEntry
from eks_capture.events.models import Metric

NO_PRESET = "none"
MAX_POD_HOSTS = 32  # "host a.b.c.d or " is at most 24 characters: 32 hosts stay under the filter cap
LINK_LOCAL_FILTER = "port 53 or net 169.254.0.0/16"
TCP_CONTROL_FILTER = "tcp[tcpflags] & (tcp-syn|tcp-rst|tcp-fin) != 0"
ENA_NAMESPACES = ("CWAgent",)


def _ena(*counters: str) -> tuple[tuple[str, str], ...]:
    """The ENA counters as the CloudWatch agent's ethtool plugin publishes them (``ethtool_`` prefix)."""
    return tuple((namespace, f"ethtool_{counter}") for namespace in ENA_NAMESPACES for counter in counters)


@dataclass(frozen=True)
class Preset:
    """How to capture for one kind of alarm; ``None`` fields keep the stack's default."""

    name: str
    metrics: tuple[tuple[str, str], ...]
    why: str
    filter: str | None = None
    snaplen: int | None = None
    duration_seconds: int | None = None
    pod_traffic: bool = False
    port_filter: str | None = None

    def capture_filter(self, port: int | None) -> str | None:
        """The preset's filter; a port-aware preset narrows to ``port`` when the alarm's tags give one."""
        if self.port_filter is not None and port is not None:
            return self.port_filter.format(port=port)
        return self.filter

    def describe(self, port: int | None = None) -> str:
        """The preset in one line, for the session, logs and notifications."""
        parts = [f"filter {self.capture_filter(port) or 'everything'}"]
        if self.pod_traffic:
            parts[0] = "filter the traffic of the pods the alarm names (their node's traffic if none)"
        if self.snaplen is not None:
            parts.append(f"snap length {self.snaplen}")
        if self.duration_seconds is not None:
            parts.append(f"{self.duration_seconds} s")
        return f"{self.name}: {', '.join(parts)} ({self.why})"


PRESETS: tuple[Preset, ...] = (
    Preset(
        name="link-local",
        metrics=(*_ena("linklocal_allowance_exceeded"),),
        why="DNS, IMDS and Time Sync packets dropped at the ENI: whole DNS and link-local messages",
        filter=LINK_LOCAL_FILTER,
        snaplen=1536,
    ),
    Preset(
        name="conntrack",
        metrics=(*_ena("conntrack_allowance_exceeded"),),
        why="connection tracking full: who opens and closes connections (conntrack counts in netstate)",
        filter=TCP_CONTROL_FILTER,
        snaplen=128,
    ),
    Preset(
        name="headers-short",
        metrics=_ena("pps_allowance_exceeded", "bw_in_allowance_exceeded", "bw_out_allowance_exceeded"),
        why="packet or bandwidth allowance exceeded: the traffic mix, briefly, without payloads",
        snaplen=96,
        duration_seconds=60,
    ),
    Preset(
        name="pod-traffic",
        metrics=tuple(
            ("ContainerInsights", f"pod_interface_network_{way}_{what}")
            for way in ("rx", "tx")
            for what in ("dropped", "errors")
        ),
        why="a pod's network drops or errors: that pod's packets, whole",
        pod_traffic=True,
    ),
    Preset(
        name="node-interface",
        metrics=tuple(
            ("ContainerInsights", f"node_interface_network_{way}_{what}")
            for way in ("rx", "tx")
            for what in ("dropped", "errors")
        ),
        why="a node's network drops or errors: all its traffic, headers only",
        snaplen=128,
    ),
    Preset(
        name="lb-target",
        metrics=(
            ("AWS/ApplicationELB", "TargetConnectionErrorCount"),
            ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
            ("AWS/ApplicationELB", "TargetTLSNegotiationErrorCount"),
            ("AWS/NetworkELB", "TCP_Target_Reset_Count"),
        ),
        why="load balancer targets refuse or fail: TCP to the target port (tag eks-capture:port)",
        filter="tcp",
        port_filter="tcp port {port}",
    ),
)
PRESET_NAMES = tuple(preset.name for preset in PRESETS)
_BY_NAME = {preset.name: preset for preset in PRESETS}
_BY_METRIC = {metric: preset for preset in PRESETS for metric in preset.metrics}


def preset_named(name: str) -> Preset | None:
    """The preset called ``name``, None for ``none``; ValueError names the choices."""
    text = name.strip().lower()
    if text == NO_PRESET:
        return None
    if text not in _BY_NAME:
        raise ValueError(f"must be one of {', '.join((*PRESET_NAMES, NO_PRESET))}")
    return _BY_NAME[text]


def preset_for_metrics(metrics: Iterable[Metric]) -> Preset | None:
    """The preset of the first metric that has one, else None (the stack's defaults apply)."""
    for metric in metrics:
        preset = _BY_METRIC.get((metric.namespace, metric.name))
        if preset is not None:
            return preset
    return None


def _named_by(metric: Metric, pod: PodEntry) -> bool:
    dims = metric.dimensions
    if "Namespace" in dims and dims["Namespace"] != pod.namespace:
        return False
    if "FullPodName" in dims:
        return pod.name == dims["FullPodName"]
    if "PodName" in dims:
        return dims["PodName"] in (pod.name, pod.workload)
    return False


def pod_hosts_filter(metrics: Sequence[Metric], pods: Iterable[PodEntry]) -> str | None:
    """``host a or host b ...`` for the running pods the metrics name; None when they name none."""
    ips = sorted(
        {
            ip
            for pod in pods
            if not pod.host_network
            and pod.phase not in FINISHED_PHASES
            and any(_named_by(m, pod) for m in metrics)
            for ip in pod.ips
        }
    )
    if not ips or len(ips) > MAX_POD_HOSTS:
        return None
    return " or ".join(f"host {ip}" for ip in ips)
