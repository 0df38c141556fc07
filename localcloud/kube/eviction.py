"""Why the kubelet stops a running pod itself: its activeDeadlineSeconds, or its eviction manager finding an
emptyDir past its ``sizeLimit`` (pkg/kubelet/eviction: localStorageEviction -> emptyDirLimitEviction).

A volume's usage is measured as the kubelet's ``du`` does: the allocated blocks (st_blocks x 512) of the
directory and of everything under it, each inode once. The real eviction manager looks every 10 s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localcloud.kube.events import record_event
from localcloud.kube.podstatus import set_condition
from localcloud.kube.quota import parse_quantity
from localcloud.kube.registry import Registry
from localcloud.kube.resources import PODS
from localcloud.kube.store import Obj

EVICTED = "Evicted"
EMPTYDIR_MESSAGE = 'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}". '
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


@dataclass(frozen=True)
class Stop:
    """The kubelet ends the pod: phase Failed with this reason and message."""

    reason: str
    message: str


def directory_usage(path: Path) -> int:
    """Allocated bytes of ``path`` and everything under it, each inode counted once (``du``)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for entry in (root, *(os.path.join(root, name) for name in dirs + files)):
            try:
                stat = os.lstat(entry)
            except FileNotFoundError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def emptydir_over_limit(pod: Obj, volumes: Mapping[str, Path]) -> Stop | None:
    """The eviction of a pod one of whose emptyDir volumes holds more than its ``sizeLimit``."""
    for volume in pod["spec"].get("volumes") or []:
        limit = (volume.get("emptyDir") or {}).get("sizeLimit")
        path = volumes.get(volume["name"])
        if limit and path is not None and directory_usage(path) > parse_quantity(limit):
            return Stop(EVICTED, EMPTYDIR_MESSAGE.format(name=volume["name"], limit=limit))
    return None


def past_deadline(pod: Obj, running_for: float) -> Stop | None:
    """The pod's activeDeadlineSeconds ran out."""
    deadline = pod["spec"].get("activeDeadlineSeconds")
    return Stop("DeadlineExceeded", DEADLINE_MESSAGE) if deadline and running_for >= deadline else None


def record_eviction(registry: Registry, pod: Obj, stop: Stop, now: float) -> None:
    """What the eviction manager adds to the Failed status: a DisruptionTarget condition and an event."""
    meta = pod["metadata"]

    def change(obj: Obj) -> None:
        set_condition(obj, "DisruptionTarget", "True", now, "TerminationByKubelet", stop.message)

    registry.mutate(PODS, meta["namespace"], meta["name"], change)
    record_event(registry, pod, "Warning", EVICTED, stop.message, "kubelet")
