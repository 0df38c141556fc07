"""Scripted behaviour of pods on non-local nodes: how long they start, run, and how they end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localcloud.kube.selectors import LabelSelector, labels_match

Obj = dict[str, Any]


@dataclass(frozen=True)
class PodBehaviour:
    """How a pod on a non-local node behaves.

    ``start_after``: seconds in ContainerCreating; ``run_for``: seconds running before the containers
    exit (None: until deleted) with ``exit_code`` and ``message``; ``image_pull_error``: stays Pending
    in ImagePullBackOff; ``stop_after``: seconds to exit after SIGTERM; ``log``: what pods/log returns.
    """

    start_after: float = 0.0
    run_for: float | None = None
    exit_code: int = 0
    message: str = ""
    image_pull_error: bool = False
    stop_after: float = 0.0
    log: str = ""


@dataclass(frozen=True)
class PodScript:
    """A behaviour and the pods it applies to (every given filter must match)."""

    behaviour: PodBehaviour
    node: str | None
    namespace: str | None
    labels: LabelSelector
    name_prefix: str | None

    def matches(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        return (
            self.node in (None, pod["spec"].get("nodeName"))
            and self.namespace in (None, meta.get("namespace"))
            and (self.name_prefix is None or meta["name"].startswith(self.name_prefix))
            and labels_match(self.labels, meta.get("labels"))
        )
