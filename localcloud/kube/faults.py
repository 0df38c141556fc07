"""Fault and latency injection per (verb, resource), and the call counter tests and benchmarks read."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from localcloud.kube.status import ApiError, too_many_requests


@dataclass
class Fault:
    """Answer matching requests with ``status`` (or drop the connection when ``status`` is None, after
    ``stall_seconds`` of silence).

    ``rate`` is the probability per matching request; ``times`` caps how often it fires (None: always).
    """

    verb: str | None
    resource: str | None
    status: int | None
    rate: float = 1.0
    times: int | None = None
    retry_after: int = 1
    fired: int = 0
    stall_seconds: float = 0.0

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in (None, verb) and self.resource in (None, resource)

    def error(self, verb: str, resource: str) -> ApiError:
        """The Status answer: 429 with Retry-After, 503 with Retry-After, or an internal error."""
        status = self.status or 500
        if status == 429:
            return too_many_requests(self.retry_after)
        reasons = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
        return ApiError(
            status,
            reasons.get(status, "InternalError"),
            f"Internal error occurred: injected fault on {verb} {resource}",
            {"causes": [{"message": "injected fault"}]},
            headers={"Retry-After": str(self.retry_after)} if status == 503 else None,
        )


class Faults:
    """What the emulator does to requests before serving them; empty by default."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._faults: list[Fault] = []
        self._latency: list[tuple[str | None, str | None, float]] = []
        self._compactions: list[list[Any]] = []

    def add_latency(self, seconds: float, verb: str | None = None, resource: str | None = None) -> None:
        """Delay matching requests by ``seconds`` (added up when several entries match)."""
        with self._lock:
            self._latency.append((verb, resource, seconds))

    def fail(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        status: int = 500,
        rate: float = 1.0,
        times: int | None = None,
        retry_after: int = 1,
    ) -> Fault:
        """Answer matching requests with ``status`` (500, 503, 429 + Retry-After...)."""
        fault = Fault(verb, resource, status, rate, times, retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        rate: float = 1.0,
        times: int | None = None,
    ) -> Fault:
        """Close the connection of matching requests without an answer."""
        fault = Fault(verb, resource, None, rate, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def compact_before_continue(self, resource: str | None = None, times: int = 1) -> None:
        """The next ``times`` list requests that carry a continue token meet a compaction: each is
        answered 410 Expired, as a list paged across etcd's compaction is."""
        with self._lock:
            self._compactions.append([resource, times])

    def compaction_due(self, resource: str) -> bool:
        """Whether a continued list of ``resource`` meets a compaction now (counts it)."""
        with self._lock:
            for entry in self._compactions:
                if entry[0] in (None, resource) and entry[1] > 0:
                    entry[1] -= 1
                    return True
        return False

    def stall(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        seconds: float,
        times: int | None = None,
    ) -> Fault:
        """Hold matching requests ``seconds`` without a byte of answer, then drop the connection (a
        black-holed path or a hung API server): only the client's read timeout gets it out."""
        fault = Fault(verb, resource, None, 1.0, times, stall_seconds=seconds)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._compactions.clear()

    def latency(self, verb: str, resource: str) -> float:
        with self._lock:
            return sum(
                seconds for v, r, seconds in self._latency if v in (None, verb) and r in (None, resource)
            )

    def pick(self, verb: str, resource: str) -> Fault | None:
        """The fault this request suffers, if any (counts it as fired)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(verb, resource) or (
                    fault.times is not None and fault.fired >= fault.times
                ):
                    continue
                if fault.rate >= 1.0 or self._random.random() < fault.rate:
                    fault.fired += 1
                    return fault
        return None


class CallCounter:
    """API requests received, by (verb, resource); ``calls["list", "pods"]``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._arrivals: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    def record(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[verb, resource] += 1
            self._arrivals[verb, resource].append(time.monotonic())

    def __getitem__(self, key: tuple[str, str]) -> int:
        with self._lock:
            return self._counts[key]

    def arrivals(self, verb: str, resource: str) -> list[float]:
        """When each such request reached the server (``time.monotonic()``), oldest first: a client's own
        pauses (a read timeout, a back-off) show between them, apart from how long the client then took."""
        with self._lock:
            return list(self._arrivals[verb, resource])

    def total(self, verb: str | None = None, resource: str | None = None) -> int:
        """Requests matching ``verb`` and ``resource`` (None matches any)."""
        with self._lock:
            return sum(n for (v, r), n in self._counts.items() if verb in (None, v) and resource in (None, r))

    def snapshot(self) -> dict[str, int]:
        """``{"list pods": 3, ...}`` for reports."""
        with self._lock:
            return {f"{v} {r}": n for (v, r), n in sorted(self._counts.items())}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._arrivals.clear()
