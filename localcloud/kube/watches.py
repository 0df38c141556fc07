"""Watch: a list request with ``watch=true`` streams ADDED/MODIFIED/DELETED events as JSON lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from localcloud.kube.registry import Registry
from localcloud.kube.resources import ResourceType
from localcloud.kube.selectors import FieldSelector, LabelSelector, fields_match, labels_match
from localcloud.kube.store import Obj

MAX_WATCH_SECONDS = 1800
GONE = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "too old resource version",
    "reason": "Expired",
    "code": 410,
}


def _matches(obj: Obj, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> bool:
    if namespace and obj["metadata"].get("namespace") != namespace:
        return False
    return labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)


def watch_events(
    registry: Registry,
    rtype: ResourceType,
    namespace: str | None,
    labels: LabelSelector,
    fields: FieldSelector,
    resource_version: str,
    timeout_seconds: float,
    stopping: threading.Event,
) -> Iterator[dict[str, Any]]:
    """Events after ``resource_version`` ("" or "0": current objects as ADDED first) until the timeout."""
    store = registry.store
    if resource_version in ("", "0"):
        with store.lock:
            last = store.revision
            current = [o for o in store.items(rtype, namespace) if _matches(o, namespace, labels, fields)]
        for obj in current:
            yield {"type": "ADDED", "object": obj}
    else:
        last = int(resource_version)
    deadline = time.monotonic() + min(timeout_seconds, MAX_WATCH_SECONDS)
    while not stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
        with store.changed:
            if store.revision == last:
                store.changed.wait(min(remaining, 0.5))
            events = store.events_after(last, rtype)
            last = store.revision
        if events is None:
            yield {"type": "ERROR", "object": GONE}
            return
        for event in events:
            if _matches(event.obj, namespace, labels, fields):
                yield {"type": event.kind, "object": event.obj}
