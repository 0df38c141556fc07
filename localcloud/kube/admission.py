"""The admission chain a create passes through, in the API server's order, with its refusals' words.

Mutating: ServiceAccount (the pod's service account must exist in its namespace; the name in the
message is still the ``generateName`` prefix, since names are generated after mutating admission).
Then the object is validated (422), then the validating plugins: PodSecurity (the namespace's
``pod-security.kubernetes.io/enforce`` level refuses a pod; its ``warn`` level adds a warning for a pod it
admits and for a Job's or DaemonSet's pod template, sent as ``Warning`` headers of the request that
created it: ``begin_request`` / ``recorded_warnings``), validating webhooks (``webhooks.deny(...)``: a
test's stand-in for Kyverno or Gatekeeper), ResourceQuota (last, as in the real plugin order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from localcloud.kube.podsecurity import refusal as pod_security_refusal
from localcloud.kube.podsecurity import warning as pod_security_warning
from localcloud.kube.quota import quota_refusal
from localcloud.kube.resources import (
    DAEMONSETS,
    JOBS,
    NAMESPACES,
    PODS,
    RESOURCEQUOTAS,
    SERVICEACCOUNTS,
    ResourceType,
)
from localcloud.kube.status import ApiError
from localcloud.kube.store import Obj, Store


def admission_forbidden(rtype: ResourceType, name: str, why: str) -> ApiError:
    """403 as ``admission.NewForbidden`` writes it: ``pods "x" is forbidden: <why>``."""
    details: dict[str, Any] = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.plural
    return ApiError(403, "Forbidden", f'{rtype.qualified} "{name}" is forbidden: {why}', details)


@dataclass(frozen=True)
class WebhookDenial:
    """A validating webhook that denies matching creates, as Kyverno or Gatekeeper would.

    ``resources`` are plurals (``jobs``, ``daemonsets``, ``pods``); ``namespace`` limits it to one
    namespace; ``when`` selects objects (e.g. by label); ``code`` is the HTTP status of the answer (the API
    server turns a code below 400 into 400, as a webhook without one gets). ``message`` may be a function
    of the object, as Kyverno's names it (``resource Job/<namespace>/<name> was blocked due to ...``).
    """

    name: str
    message: str | Callable[[Obj], str]
    resources: tuple[str, ...]
    code: int = 400
    reason: str = ""
    namespace: str | None = None
    when: Callable[[Obj], bool] | None = None

    def matches(self, rtype: ResourceType, obj: Obj) -> bool:
        return (
            rtype.plural in self.resources
            and self.namespace in (None, obj["metadata"].get("namespace"))
            and (self.when is None or self.when(obj))
        )

    def error(self, obj: Obj) -> ApiError:
        denied = f'admission webhook "{self.name}" denied the request'
        text = (self.message(obj) if callable(self.message) else self.message) or self.reason
        message = f"{denied}: {text}" if text else f"{denied} without explanation"
        return ApiError(max(self.code, 400), self.reason, message)


class Webhooks:
    """The validating webhooks registered with the cluster (none by default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._denials: list[WebhookDenial] = []

    def deny(
        self,
        name: str,
        message: str | Callable[[Obj], str],
        resources: str | Iterable[str] = ("pods",),
        *,
        code: int = 400,
        reason: str = "",
        namespace: str | None = None,
        when: Callable[[Obj], bool] | None = None,
    ) -> WebhookDenial:
        """Register a webhook ``name`` that denies creates of ``resources`` with ``message``."""
        plurals = (resources,) if isinstance(resources, str) else tuple(resources)
        denial = WebhookDenial(name, message, plurals, code, reason, namespace, when)
        with self._lock:
            self._denials.append(denial)
        return denial

    def clear(self) -> None:
        with self._lock:
            self._denials.clear()

    def refusal(self, rtype: ResourceType, obj: Obj) -> ApiError | None:
        with self._lock:
            denials = list(self._denials)
        return next((d.error(obj) for d in denials if d.matches(rtype, obj)), None)


class Admission:
    """The admission plugins of this API server, reading the store they guard."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.webhooks = Webhooks()
        self._request = threading.local()

    def begin_request(self) -> None:
        """Start recording the warnings of the request this thread serves (the controllers' own creates,
        on the control loop's thread, record none: nobody would read them)."""
        self._request.warnings = []

    def recorded_warnings(self) -> list[str]:
        """The warnings admission gave the request this thread serves, in order."""
        return list(getattr(self._request, "warnings", []))

    def _warn(self, text: str) -> None:
        recorded = getattr(self._request, "warnings", None)
        if recorded is not None:
            recorded.append(text)

    def mutate(self, rtype: ResourceType, obj: Obj, requested_name: str) -> None:
        """Mutating admission (before validation): ServiceAccount."""
        if rtype is not PODS:
            return
        namespace = obj["metadata"]["namespace"]
        account = obj["spec"].get("serviceAccountName") or "default"
        if self.store.get(SERVICEACCOUNTS, namespace, account) is None:
            raise admission_forbidden(
                rtype,
                requested_name,
                f"error looking up service account {namespace}/{account}: "
                f'serviceaccount "{account}" not found',
            )

    def validate(self, rtype: ResourceType, obj: Obj) -> None:
        """Validating admission (after validation): PodSecurity, webhooks, ResourceQuota."""
        name = obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace")
        if rtype in (PODS, JOBS, DAEMONSETS):
            found = self.store.get(NAMESPACES, None, namespace)
            labels = (found or {}).get("metadata", {}).get("labels")
            spec = obj["spec"] if rtype is PODS else (obj["spec"].get("template") or {}).get("spec") or {}
            why = pod_security_refusal(labels, spec) if rtype is PODS else None
            if why:
                raise admission_forbidden(rtype, name, why)
            warned = pod_security_warning(labels, spec)
            if warned:
                self._warn(warned)
        denied = self.webhooks.refusal(rtype, obj)
        if denied is not None:
            raise denied
        if rtype is PODS:
            quotas = self.store.items(RESOURCEQUOTAS, namespace)
            why = quota_refusal(quotas, self.store.items(PODS, namespace), obj) if quotas else None
            if why:
                raise admission_forbidden(rtype, name, why)
