"""Events the control plane records about objects (``FailedCreate`` on a Job...), aggregated like client-go's
event correlator: the same reason and message about the same object bumps ``count`` and
``lastTimestamp`` instead of adding an event."""

from __future__ import annotations

import secrets
import time

from localcloud.kube.clock import rfc3339
from localcloud.kube.registry import Registry
from localcloud.kube.resources import EVENTS
from localcloud.kube.store import Obj


def involved_object(obj: Obj) -> Obj:
    meta = obj["metadata"]
    reference = {
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": obj["apiVersion"],
    }
    if meta.get("namespace"):
        reference["namespace"] = meta["namespace"]
    reference["resourceVersion"] = meta.get("resourceVersion", "")
    return reference


def record_event(registry: Registry, about: Obj, kind: str, reason: str, message: str, component: str) -> Obj:
    """Record (or count again) a ``kind`` (Normal/Warning) event about ``about`` from ``component``."""
    namespace = about["metadata"].get("namespace") or "default"
    uid = about["metadata"]["uid"]
    stamp = rfc3339(time.time())
    with registry.store.lock:
        for event in registry.store.items(EVENTS, namespace):
            same = (event.get("involvedObject") or {}).get("uid") == uid
            if same and event.get("reason") == reason and event.get("message") == message:

                def again(obj: Obj) -> None:
                    obj["count"] = int(obj.get("count") or 1) + 1
                    obj["lastTimestamp"] = stamp

                return registry.mutate(EVENTS, namespace, event["metadata"]["name"], again) or event
        body = {
            "metadata": {"name": f"{about['metadata']['name']}.{secrets.token_hex(8)}"},
            "involvedObject": involved_object(about),
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": kind,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        return registry.create(EVENTS, namespace, body)
