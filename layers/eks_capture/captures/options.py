"""How to capture (duration, filter, snap length, fallback, cluster): stack defaults, then for an alarm the
preset its metric selects (captures.presets) and its tags over that, or a manual request's fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from eks_capture.captures.presets import Preset, preset_for_metrics, preset_named
from eks_capture.errors import CaptureRejected
from eks_capture.events.fields import (
    MAX_SNAPLEN,
    MIN_SNAPLEN,
    check_bpf_filter,
    check_cluster_name,
    check_duration,
    check_service,
)
from eks_capture.events.models import AlarmStateChange, StartCaptureDetail
from eks_capture.kube.manifests.job import TcpdumpOptions
from eks_capture.settings import NodeFallback, Settings

TAG_PREFIX = "eks-capture:"
TAG_DURATION = f"{TAG_PREFIX}duration"
TAG_FILTER = f"{TAG_PREFIX}filter"
TAG_SNAPLEN = f"{TAG_PREFIX}snaplen"
TAG_FALLBACK = f"{TAG_PREFIX}fallback"
TAG_CLUSTER = f"{TAG_PREFIX}cluster"
TAG_PRESET = f"{TAG_PREFIX}preset"
TAG_PORT = f"{TAG_PREFIX}port"
TAG_SERVICE = f"{TAG_PREFIX}service"
TAG_SERVICE_PORTS = f"{TAG_PREFIX}service-ports"
CAPTURE_TAGS = (
    TAG_DURATION,
    TAG_FILTER,
    TAG_SNAPLEN,
    TAG_FALLBACK,
    TAG_CLUSTER,
    TAG_SERVICE,
    TAG_SERVICE_PORTS,
)
PRESET_TAGS = (TAG_PRESET, TAG_PORT)  # alarms only: which preset (docs/presets.md), the target port
KNOWN_TAGS = (*CAPTURE_TAGS, *PRESET_TAGS)
T = TypeVar("T")
NO_FILTER_WORDS = ("", "none", "all")


@dataclass(frozen=True)
class CaptureOptions(TcpdumpOptions):
    """The resolved options of one capture: tcpdump's (duration, snap length, filter; ``filter`` None
    captures everything) and how its nodes are chosen; ``cluster`` is set by a start request or an alarm's
    tag (DEFAULT_CLUSTER applies only through ``alarm_cluster``)."""

    fallback: NodeFallback = NodeFallback.NONE
    cluster: str | None = None
    preset: str | None = None
    narrow_to_pods: bool = False
    service: str | None = None  # namespace/name: also the nodes of its ready endpoints (alarms: a tag)
    service_ports: bool = False  # narrow the filter to the Service's ports

    @classmethod
    def defaults(cls, settings: Settings) -> CaptureOptions:
        """The stack's defaults from its settings."""
        return cls(
            duration_seconds=settings.default_duration_seconds,
            snaplen=settings.default_snaplen,
            fallback=settings.node_fallback,
        )


def capture_options_from_tags(
    tags: Mapping[str, str], defaults: CaptureOptions, *, max_duration_seconds: int
) -> CaptureOptions:
    """``defaults`` overridden by an alarm's ``eks-capture:*`` tags; CaptureRejected names a bad tag."""
    return replace(defaults, **_tag_changes(tags, max_duration_seconds))  # type: ignore[arg-type]


def capture_options_for_alarm(
    alarm: AlarmStateChange, tags: Mapping[str, str], defaults: CaptureOptions, *, max_duration_seconds: int
) -> CaptureOptions:
    """``defaults``, then the preset the alarm's metric selects (or its ``eks-capture:preset`` tag names),
    then its other tags over both; CaptureRejected names a bad tag."""
    changes = _tag_changes(tags, max_duration_seconds)
    preset = _tag(tags, TAG_PRESET, preset_named) if TAG_PRESET in tags else preset_for_metrics(alarm.metrics)
    port = _tag(tags, TAG_PORT, _port) if TAG_PORT in tags else None
    base = defaults if preset is None else _with_preset(defaults, preset, port, max_duration_seconds)
    if "filter" in changes:
        base = replace(base, narrow_to_pods=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def _with_preset(
    defaults: CaptureOptions, preset: Preset, port: int | None, max_duration_seconds: int
) -> CaptureOptions:
    """``defaults`` with what ``preset`` sets (its duration never beyond the stack's maximum)."""
    duration = defaults.duration_seconds
    if preset.duration_seconds is not None:
        duration = min(preset.duration_seconds, max_duration_seconds)
    return replace(
        defaults,
        duration_seconds=duration,
        snaplen=preset.snaplen if preset.snaplen is not None else defaults.snaplen,
        filter=preset.capture_filter(port),
        preset=preset.name,
        narrow_to_pods=preset.pod_traffic,
    )


def _yes_or_no(raw: str) -> bool:
    """``true`` or ``false`` (any case)."""
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value == "true"


def _tag(tags: Mapping[str, str], tag: str, parse: Callable[[str], T]) -> T:
    """One tag's value parsed; CaptureRejected names the tag when it is wrong."""
    try:
        return parse(tags[tag])
    except ValueError as exc:
        raise CaptureRejected(f"tags.{tag}", str(exc)) from None


def _tag_changes(tags: Mapping[str, str], max_duration_seconds: int) -> dict[str, object]:
    """The CaptureOptions fields the ``eks-capture:*`` tags set, every tag validated."""
    unknown = sorted(key for key in tags if key.startswith(TAG_PREFIX) and key not in KNOWN_TAGS)
    if unknown:
        raise CaptureRejected(
            f"tags.{unknown[0]}", f"unknown capture tag; known tags: {', '.join(KNOWN_TAGS)}"
        )
    parsers: dict[str, tuple[str, Callable[[str], object]]] = {
        TAG_DURATION: ("duration_seconds", lambda raw: check_duration(_integer(raw), max_duration_seconds)),
        TAG_SNAPLEN: ("snaplen", lambda raw: _snaplen(_integer(raw))),
        TAG_FILTER: ("filter", _filter),
        TAG_FALLBACK: ("fallback", _fallback),
        TAG_CLUSTER: ("cluster", lambda raw: check_cluster_name(raw.strip())),
        TAG_SERVICE: ("service", lambda raw: check_service(raw.strip())),
        TAG_SERVICE_PORTS: ("service_ports", _yes_or_no),
    }
    for tag, check in ((TAG_PRESET, preset_named), (TAG_PORT, _port)):
        if tag in tags:
            _tag(tags, tag, check)
    return {field: _tag(tags, tag, parse) for tag, (field, parse) in parsers.items() if tag in tags}


def capture_options_for_request(request: StartCaptureDetail, defaults: CaptureOptions) -> CaptureOptions:
    """``defaults`` overridden by what a manual Start Capture gives (already validated by its model)."""
    return replace(
        defaults,
        duration_seconds=request.duration_seconds or defaults.duration_seconds,
        snaplen=request.snaplen or defaults.snaplen,
        filter=request.filter if request.filter is not None else defaults.filter,
        cluster=request.cluster,
    )


def alarm_cluster(alarm: AlarmStateChange, options: CaptureOptions, default_cluster: str | None) -> str:
    """The cluster an alarm is about: its ``eks-capture:cluster`` tag (``options.cluster``), else the one
    ClusterName its metrics carry, else DEFAULT_CLUSTER; CaptureRejected when it cannot be told."""
    named = sorted({m.dimensions["ClusterName"] for m in alarm.metrics if "ClusterName" in m.dimensions})
    if options.cluster is not None:
        return options.cluster
    if len(named) > 1:
        raise CaptureRejected(
            "detail.configuration.metrics",
            f"the alarm's metrics name several clusters ({', '.join(named)}); give it an {TAG_CLUSTER} tag",
        )
    if named:
        return check_cluster_name(named[0])
    if default_cluster is not None:
        return default_cluster
    raise CaptureRejected(
        f"tags.{TAG_CLUSTER}",
        f"the alarm names no cluster: give it a ClusterName dimension or an {TAG_CLUSTER} tag, "
        "or set DEFAULT_CLUSTER",
    )


def _integer(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise ValueError(f"must be a whole number, got {raw!r}")
    return int(text)


def _snaplen(value: int) -> int:
    if not MIN_SNAPLEN <= value <= MAX_SNAPLEN:
        raise ValueError(f"snap length must be between {MIN_SNAPLEN} and {MAX_SNAPLEN} bytes")
    return value


def _port(raw: str) -> int:
    value = _integer(raw)
    if not 1 <= value <= 65535:
        raise ValueError("port must be between 1 and 65535")
    return value


def _filter(raw: str) -> str | None:
    text = raw.strip()
    return None if text.lower() in NO_FILTER_WORDS else check_bpf_filter(text)


def _fallback(raw: str) -> NodeFallback:
    try:
        return NodeFallback(raw.strip().lower())
    except ValueError:
        raise ValueError(f"must be one of {', '.join(f.value for f in NodeFallback)}") from None
