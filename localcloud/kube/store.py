"""The object store: etcd's role, with a global resourceVersion and key-ordered listing.

Stored objects are never mutated in place: writers store a fresh dict, so a reader may serialize
what it got without holding the lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from localcloud.kube.resources import ALL, ResourceType

Obj = dict[str, Any]
EVENT_HISTORY = 20_000


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it: ADDED, MODIFIED or DELETED, at a resourceVersion."""

    revision: int
    kind: str
    plural: str
    obj: Obj


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    return value


def object_key(rtype: ResourceType, namespace: str | None, name: str) -> str:
    """``<namespace>/<name>`` or ``<name>``: the order lists are returned in, as etcd keys sort."""
    return f"{namespace}/{name}" if rtype.namespaced else name


class Store:
    """Objects by resource and key, one lock, one monotonic resourceVersion."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._revision = 0
        self._objects: dict[str, dict[str, Obj]] = {r.plural: {} for r in ALL}
        self._keys: dict[str, list[str]] = {r.plural: [] for r in ALL}
        self._by_uid: dict[str, tuple[ResourceType, str]] = {}
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self._objects[rtype.plural].get(object_key(rtype, namespace, name))

    def by_uid(self, uid: str) -> Obj | None:
        """The live object with this uid, whatever its kind."""
        with self.lock:
            found = self._by_uid.get(uid)
            return self._objects[found[0].plural].get(found[1]) if found else None

    def keys_from(self, rtype: ResourceType, namespace: str | None, start: str = "") -> Iterator[str]:
        """Keys in order from ``start`` (inclusive), limited to ``namespace`` when given."""
        keys = self._keys[rtype.plural]
        prefix = f"{namespace}/" if namespace and rtype.namespaced else ""
        index = bisect.bisect_left(keys, max(start, prefix))
        while index < len(keys) and keys[index].startswith(prefix):
            yield keys[index]
            index += 1

    def at(self, rtype: ResourceType, key: str) -> Obj:
        return self._objects[rtype.plural][key]

    def items(self, rtype: ResourceType, namespace: str | None = None) -> list[Obj]:
        """A snapshot of the objects of one resource (in one namespace), in key order."""
        with self.lock:
            objects = self._objects[rtype.plural]
            return [objects[key] for key in self.keys_from(rtype, namespace)]

    def count(self, rtype: ResourceType) -> int:
        return len(self._objects[rtype.plural])

    def put(self, rtype: ResourceType, obj: Obj) -> Obj:
        """Store ``obj`` (owned by the store from now on) with the next resourceVersion."""
        with self.lock:
            self._revision += 1
            metadata = obj["metadata"]
            metadata["resourceVersion"] = str(self._revision)
            key = object_key(rtype, metadata.get("namespace"), metadata["name"])
            objects = self._objects[rtype.plural]
            if key not in objects:
                bisect.insort(self._keys[rtype.plural], key)
            self._events.append(
                Event(self._revision, "MODIFIED" if key in objects else "ADDED", rtype.plural, obj)
            )
            objects[key] = obj
            self._by_uid[metadata["uid"]] = (rtype, key)
            self.changed.notify_all()
            return obj

    def events_after(self, revision: int, rtype: ResourceType) -> list[Event] | None:
        """Changes of one resource after ``revision``, or None when the history no longer reaches back."""
        with self.lock:
            if revision < self._revision and (not self._events or self._events[0].revision > revision + 1):
                return None
            newer = []
            for event in reversed(self._events):
                if event.revision <= revision:
                    break
                if event.plural == rtype.plural:
                    newer.append(event)
            return newer[::-1]

    def remove(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        with self.lock:
            key = object_key(rtype, namespace, name)
            obj = self._objects[rtype.plural].pop(key, None)
            if obj is not None:
                keys = self._keys[rtype.plural]
                del keys[bisect.bisect_left(keys, key)]
                self._by_uid.pop(obj["metadata"]["uid"], None)
                self._revision += 1
                final = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._revision)}}
                self._events.append(Event(self._revision, "DELETED", rtype.plural, final))
                self.changed.notify_all()
            return obj
