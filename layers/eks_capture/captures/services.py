"""A Service a capture request names: its ready endpoints' nodes and its ports, from its EndpointSlices.

Capturing the nodes of a Service's ready endpoints (and, by a pod selector, the clients' nodes) puts
both ends of a flow in one capture, which is what the path analysis needs to say where packets were
lost. Read as the API gives them: ``conditions.ready`` unset means ready (EndpointConditions' rule for
consumers), an endpoint without ``nodeName`` cannot be placed on a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service's endpoint and where it runs."""

    address: str
    node: str | None
    ready: bool


@dataclass(frozen=True)
class ServiceEndpoints:
    """A Service as a capture sees it; ``found`` is False when the namespace has no such Service."""

    namespace: str
    name: str
    found: bool
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[int, ...] = ()

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def ports_filter(self) -> str | None:
        """A BPF filter for the Service's ports and its endpoints' (target) ports; None when it has none."""
        return " or ".join(f"port {port}" for port in self.ports) or None


def service_endpoints(
    ref: str, service: Mapping[str, Any] | None, slices: Iterable[Mapping[str, Any]]
) -> ServiceEndpoints:
    """The Service ``namespace/name`` from its API object (None: not found) and its EndpointSlices."""
    namespace, _slash, name = ref.partition("/")
    if service is None:
        return ServiceEndpoints(namespace, name, found=False)
    ports = {int(p["port"]) for p in (service.get("spec") or {}).get("ports") or [] if p.get("port")}
    endpoints: list[Endpoint] = []
    for item in slices:
        ports |= {int(p["port"]) for p in item.get("ports") or [] if p.get("port")}
        for endpoint in item.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            endpoints.extend(
                Endpoint(address=str(address), node=endpoint.get("nodeName"), ready=ready is not False)
                for address in endpoint.get("addresses") or []
            )
    return ServiceEndpoints(namespace, name, True, tuple(endpoints), tuple(sorted(ports)))
