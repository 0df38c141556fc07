"""A capture Job as the product reads it: a frozen view of what the trigger, the reaper and the verdicts
use, taken from the API's JSON once, instead of each of them digging through the raw object."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eks_capture.kube.labels import ANNOTATION_EXPIRES_AT, LABEL_CAPTURE_ID, capture_selector
from eks_capture.times import parse_iso

if TYPE_CHECKING:
    from eks_capture.ids import CaptureId
    from eks_capture.kube.calls import Cluster

#: The Job status counts of pods that exist or existed (a Job with none never had a pod).
POD_COUNTS = ("active", "ready", "succeeded", "failed", "terminating")


@dataclass(frozen=True)
class Ended:
    """A Job's true ``Complete`` or ``Failed`` condition."""

    kind: str
    reason: str
    message: str


@dataclass(frozen=True)
class CaptureJob:
    """One capture Job: its name, node and capture, when it was made and must be over, and how it ended."""

    name: str
    node: str
    capture_id: str | None
    created_at: datetime | None
    expires_at: datetime | None
    deleting: bool
    ended: Ended | None
    had_pods: bool

    @property
    def finished(self) -> bool:
        """Whether the Job ended (complete or failed)."""
        return self.ended is not None

    @property
    def completed(self) -> bool:
        return self.ended is not None and self.ended.kind == "Complete"

    @property
    def failure(self) -> Ended | None:
        return self.ended if self.ended is not None and self.ended.kind == "Failed" else None

    @classmethod
    def from_kubernetes(cls, job: Mapping[str, Any]) -> CaptureJob:
        metadata = job.get("metadata") or {}
        status = job.get("status") or {}
        template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        ended = next(
            (
                Ended(str(c["type"]), str(c.get("reason") or ""), str(c.get("message") or ""))
                for c in status.get("conditions") or []
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            ),
            None,
        )
        return cls(
            name=str(metadata.get("name", "")),
            node=str(template.get("nodeName", "unknown")),
            capture_id=(metadata.get("labels") or {}).get(LABEL_CAPTURE_ID),
            created_at=parse_iso(metadata.get("creationTimestamp")),
            expires_at=parse_iso((metadata.get("annotations") or {}).get(ANNOTATION_EXPIRES_AT)),
            deleting=bool(metadata.get("deletionTimestamp")),
            ended=ended,
            had_pods=any(status.get(count) for count in POD_COUNTS),
        )


def jobs_of_capture(cluster: Cluster, namespace: str, capture_id: CaptureId) -> Iterator[CaptureJob]:
    """One capture's Jobs, listed now and read one by one as they are used (a stop deletes each as it
    comes)."""
    return map(CaptureJob.from_kubernetes, cluster.capture_jobs(namespace, capture_selector(capture_id)))
