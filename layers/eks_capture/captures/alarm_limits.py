"""What an alarm may ask for. Whoever may write an alarm whose name has the stack's prefix may start a
capture, so an alarm is a request, not an order: the stack's caps (AlarmMaxSnaplen, AlarmMaxDurationSeconds,
AlarmAllowFallbackAll, AlarmClusterNames) bound it. A snap length or duration beyond its cap is clipped,
a ``fallback=all`` tag or a cluster alarms may not capture on is refused, and each is recorded on the
session in words, so the operator reads what the alarm asked and what it got. The stack's own defaults are
clipped too (an alarm without tags keeps at most AlarmMaxSnaplen bytes), silently: the alarm asked nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from eks_capture.captures.options import TAG_DURATION, TAG_FALLBACK, TAG_SNAPLEN, CaptureOptions
from eks_capture.captures.presets import preset_named
from eks_capture.settings import NodeFallback, Settings


@dataclass(frozen=True)
class AlarmLimits:
    """The stack's caps on captures alarms start."""

    max_snaplen: int
    max_duration_seconds: int
    fallback_all: bool  # whether a tag may ask for every node (always, when that is the stack's own default)
    clusters: tuple[str, ...]  # empty: any cluster (a stack that names none)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlarmLimits:
        """The caps the stack's parameters set."""
        return cls(
            max_snaplen=settings.alarm_max_snaplen,
            max_duration_seconds=settings.alarm_max_duration_seconds,
            fallback_all=settings.alarm_allow_fallback_all or settings.node_fallback is NodeFallback.ALL,
            clusters=settings.alarm_clusters,
        )


@dataclass(frozen=True)
class Bounded:
    """An alarm's options within the caps, and what the caps changed (option -> what and why)."""

    options: CaptureOptions
    limited: dict[str, str] = field(default_factory=dict)


def _asker(tags: Mapping[str, str], tag: str, preset_sets: bool, options: CaptureOptions) -> str | None:
    """Who asked for a value: the alarm's tag or its preset; None for the stack's own default, which is
    clipped without a word (every alarm would otherwise carry the same note)."""
    if tag in tags:
        return f"its {tag} tag"
    return f"preset {options.preset}" if preset_sets else None


def bound_alarm_options(options: CaptureOptions, tags: Mapping[str, str], limits: AlarmLimits) -> Bounded:
    """``options`` (an alarm's, tags applied) clipped and refused to fit ``limits``."""
    preset = preset_named(options.preset) if options.preset else None
    changes: dict[str, object] = {}
    limited: dict[str, str] = {}
    if options.snaplen > limits.max_snaplen:
        changes["snaplen"] = limits.max_snaplen
        if asker := _asker(tags, TAG_SNAPLEN, preset is not None and preset.snaplen is not None, options):
            limited["snaplen"] = (
                f"clipped from {options.snaplen} to {limits.max_snaplen} bytes (asked by {asker}): "
                "alarms keep at most AlarmMaxSnaplen bytes per packet"
            )
    if options.duration_seconds > limits.max_duration_seconds:
        changes["duration_seconds"] = limits.max_duration_seconds
        preset_sets = preset is not None and preset.duration_seconds is not None
        if asker := _asker(tags, TAG_DURATION, preset_sets, options):
            limited["duration"] = (
                f"clipped from {options.duration_seconds} s to {limits.max_duration_seconds} s (asked by "
                f"{asker}): alarms capture at most AlarmMaxDurationSeconds"
            )
    if options.fallback is NodeFallback.ALL and TAG_FALLBACK in tags and not limits.fallback_all:
        changes["fallback"] = NodeFallback.NONE
        limited["fallback"] = (
            f"refused {TAG_FALLBACK}=all: AlarmAllowFallbackAll is false, so an alarm that names no node "
            "captures on none (NodeFallback)"
        )
    return Bounded(replace(options, **changes), limited)  # type: ignore[arg-type]


def refused_cluster(cluster: str, limits: AlarmLimits) -> str | None:
    """Why alarms may not capture on ``cluster``, or None when they may."""
    if not limits.clusters or cluster in limits.clusters:
        return None
    return (
        f"refused cluster {cluster}: alarms may capture only on {', '.join(limits.clusters)} "
        "(AlarmClusterNames); a manual Start Capture can still capture there"
    )
