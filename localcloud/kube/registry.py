"""The API verbs over the store, with the API server's semantics: create, get, list, update, patch, delete."""

from __future__ import annotations

import ipaddress
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcloud.kube.admission import Admission
from localcloud.kube.clock import parse_rfc3339, rfc3339
from localcloud.kube.continuation import check_not_compacted, decode_continue, encode_continue
from localcloud.kube.defaulting import apply_defaults
from localcloud.kube.patches import apply_patch
from localcloud.kube.resources import DAEMONSETS, JOBS, NAMESPACES, PODS, SERVICEACCOUNTS, ResourceType
from localcloud.kube.selectors import FieldSelector, LabelSelector, fields_match, labels_match
from localcloud.kube.status import ApiError, Invalid, already_exists, bad_request, conflict, not_found
from localcloud.kube.store import Obj, Store, clone, object_key
from localcloud.kube.validation import validate

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
OWNER_KINDS = (JOBS, DAEMONSETS)


def generated_name(prefix: str) -> str:
    """``generateName`` + five random characters, as the API server does."""
    return prefix + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


@dataclass(frozen=True)
class ListPage:
    """One page of a list: the items, the list's resourceVersion, continue token and remaining count."""

    items: list[Obj]
    resource_version: str
    continue_token: str | None
    remaining: int | None


@dataclass(frozen=True)
class DeleteOptions:
    """``DeleteOptions`` from body and query: grace period, propagation and preconditions."""

    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None


class Registry:
    """Verbs on the store; controllers use the same verbs as clients (plus ``mutate`` for status)."""

    def __init__(self, store: Store, service_cidr: str = "172.20.0.0/16") -> None:
        self.store = store
        self.admission = Admission(store)
        self._service_ips = (str(ip) for ip in ipaddress.ip_network(service_cidr).hosts())
        self.reserved_service_ips: set[str] = set()
        self.compacted_revision = 0

    def compact(self) -> None:
        """etcd's compaction up to now (every 5 minutes on a real cluster): a continue token from an older
        revision expires."""
        self.compacted_revision = self.store.revision

    def allocate_service_ip(self) -> str:
        for address in self._service_ips:
            if address not in self.reserved_service_ips:
                self.reserved_service_ips.add(address)
                return address
        raise ApiError(500, "InternalError", "Internal error occurred: the service IP range is full")

    # create -----------------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str | None, body: Any, keep_status: bool = True) -> Obj:
        """Create ``body``; the API server (``keep_status=False``) drops a given status, seeding keeps it."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        obj = clone(body)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        metadata = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = metadata
        if rtype.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        requested_name = metadata.get("name") or metadata.get("generateName") or ""
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                problems = Invalid()
                problems.required("metadata.name", "name or generateName is required")
                problems.raise_if_any(rtype, "")
            metadata["name"] = generated_name(metadata["generateName"])
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = rfc3339(time.time())
        if rtype is not NAMESPACES and rtype.has_spec:
            obj.setdefault("spec", {})
        with self.store.lock:
            if rtype.namespaced:
                self._check_namespace(rtype, namespace or "", metadata["name"])
            if self.store.get(rtype, namespace, metadata["name"]) is not None:
                raise already_exists(rtype, metadata["name"])
            given_status = obj.get("status") if keep_status and isinstance(obj.get("status"), dict) else {}
            apply_defaults(rtype, obj, self.allocate_service_ip)
            if given_status:
                obj["status"] = {**obj.get("status", {}), **given_status}
            self.admission.mutate(rtype, obj, requested_name)
            validate(rtype, obj)
            self.admission.validate(rtype, obj)
            created = self.store.put(rtype, obj)
            if rtype is NAMESPACES:  # the ServiceAccount controller's first act, done at once here
                self.create(SERVICEACCOUNTS, metadata["name"], {"metadata": {"name": "default"}})
            return created

    def _check_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        found = self.store.get(NAMESPACES, None, namespace)
        if found is None:
            raise not_found(NAMESPACES, namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rtype.qualified} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                {"name": name, "kind": rtype.plural},
            )

    # read -------------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        found = self.store.get(rtype, namespace, name)
        if found is None:
            raise not_found(rtype, name)
        return found

    def list_page(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: LabelSelector = (),
        fields: FieldSelector = (),
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        start = ""
        if continue_token:
            continuation = decode_continue(continue_token)
            check_not_compacted(continuation, self.compacted_revision)
            start = continuation.start
        items: list[Obj] = []
        next_token, remaining = None, None
        with self.store.lock:
            revision = str(self.store.revision)
            keys = self.store.keys_from(rtype, namespace, start)
            for key in keys:
                obj = self.store.at(rtype, key)
                if labels and not labels_match(labels, obj["metadata"].get("labels")):
                    continue
                if fields and not fields_match(fields, obj):
                    continue
                if limit and len(items) == limit:
                    next_token = encode_continue(revision, object_key(rtype, *_ns_name(items[-1])))
                    if not labels and not fields:
                        remaining = 1 + sum(1 for _ in keys)
                    break
                items.append(obj)
        return ListPage(items, revision, next_token, remaining)

    # update -----------------------------------------------------------------------------------
    def update(
        self, rtype: ResourceType, namespace: str | None, name: str, body: Any, subresource: str = ""
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        with self.store.lock:
            old = self.get(rtype, namespace, name)
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rtype, name)
            if (body.get("metadata") or {}).get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({body['metadata']['name']}) "
                    f"does not match the name on the URL ({name})"
                )
            new: Obj = clone(body)
            new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
            if subresource == "status":
                merged: Obj = clone(old)
                merged["status"] = new.get("status", {})
                new = merged
            else:
                new.setdefault("metadata", {})
                for field in (
                    "uid",
                    "creationTimestamp",
                    "namespace",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ):
                    if field in old["metadata"]:
                        new["metadata"][field] = old["metadata"][field]
                    else:
                        new["metadata"].pop(field, None)
                new["metadata"]["name"] = name
                if "status" in old:
                    new["status"] = clone(old["status"])
                self._check_immutable(rtype, old, new)
                if rtype.has_generation and new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            validate(rtype, new)
            finalized = old["metadata"].get("finalizers") and not new["metadata"].get("finalizers")
            if finalized and new["metadata"].get("deletionTimestamp"):
                self.store.remove(rtype, namespace, name)
                return new
            return self.store.put(rtype, new)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str = "",
    ) -> Obj:
        with self.store.lock:
            old = self.get(rtype, namespace, name)
            patched = apply_patch(content_type, old, patch)
            if (
                "resourceVersion" not in patched.get("metadata", {})
                or patched["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
            ):
                patched.setdefault("metadata", {})["resourceVersion"] = ""
            return self.update(rtype, namespace, name, patched, subresource)

    @staticmethod
    def _check_immutable(rtype: ResourceType, old: Obj, new: Obj) -> None:
        problems = Invalid()
        if rtype is PODS:
            before = {k: v for k, v in old.get("spec", {}).items() if k not in POD_MUTABLE_SPEC}
            after = {k: v for k, v in new.get("spec", {}).items() if k not in POD_MUTABLE_SPEC}
            for index, container in enumerate(after.get("containers") or []):
                if index < len(before.get("containers") or []):
                    container["image"] = before["containers"][index].get("image")
            if before != after:
                problems.forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, "
                    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                    "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` "
                    "(allow it to be set to 1 if it was previously negative)",
                )
        elif rtype in (JOBS, DAEMONSETS):
            if rtype is JOBS and old["spec"].get("template") != new.get("spec", {}).get("template"):
                problems.invalid_value("spec.template", "core.PodTemplateSpec{...}", "field is immutable")
            if old["spec"].get("selector") != new.get("spec", {}).get("selector"):
                problems.invalid_value("spec.selector", "v1.LabelSelector{...}", "field is immutable")
        problems.raise_if_any(rtype, old["metadata"]["name"])

    def mutate(
        self, rtype: ResourceType, namespace: str | None, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Apply ``change`` to a copy, store it if it differs (controllers' writes); None if gone."""
        with self.store.lock:
            old = self.store.get(rtype, namespace, name)
            if old is None:
                return None
            new = clone(old)
            change(new)
            if new == old:
                return old
            return self.store.put(rtype, new)

    # delete -----------------------------------------------------------------------------------
    def delete(
        self, rtype: ResourceType, namespace: str | None, name: str, options: DeleteOptions = DeleteOptions()
    ) -> tuple[Obj, bool]:
        """Delete or start deleting; returns the object and whether it is still present (terminating)."""
        now = time.time()
        with self.store.lock:
            obj = self.get(rtype, namespace, name)
            metadata = obj["metadata"]
            if options.precondition_uid and options.precondition_uid != metadata["uid"]:
                raise conflict(rtype, name)
            if (
                options.precondition_resource_version
                and options.precondition_resource_version != metadata["resourceVersion"]
            ):
                raise conflict(rtype, name)
            policy = options.propagation_policy or rtype.default_propagation
            if policy not in ("Orphan", "Background", "Foreground"):
                problems = Invalid()
                problems.unsupported("propagationPolicy", policy, ("Foreground", "Background", "Orphan"))
                problems.raise_if_any(rtype, name)
            if rtype is NAMESPACES:
                return self._start_terminating(rtype, obj, now, None, []), True
            if policy == "Orphan":
                self._orphan_dependents(metadata["uid"])
            finalizers = list(metadata.get("finalizers") or [])
            if policy == "Foreground" and rtype in OWNER_KINDS and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            grace = self._grace_period(rtype, obj, options.grace_period_seconds)
            if grace > 0 or finalizers:
                return self._start_terminating(
                    rtype, obj, now, grace if grace > 0 else None, finalizers
                ), True
            removed = self.store.remove(rtype, namespace, name)
            return removed or obj, False

    def _grace_period(self, rtype: ResourceType, obj: Obj, requested: int | None) -> int:
        if rtype is not PODS:
            return 0
        spec, status = obj.get("spec", {}), obj.get("status", {})
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = spec.get("terminationGracePeriodSeconds", 30) if requested is None else requested
        current = obj["metadata"].get("deletionGracePeriodSeconds")
        return int(min(grace, current) if current is not None else grace)

    def _start_terminating(
        self, rtype: ResourceType, obj: Obj, now: float, grace: int | None, finalizers: list[str]
    ) -> Obj:
        new = clone(obj)
        metadata = new["metadata"]
        if grace is not None:
            deadline = now + grace
            if metadata.get("deletionTimestamp"):
                deadline = min(deadline, parse_rfc3339(metadata["deletionTimestamp"]))
            metadata["deletionTimestamp"] = rfc3339(deadline)
            metadata["deletionGracePeriodSeconds"] = grace
        else:
            metadata.setdefault("deletionTimestamp", rfc3339(now))
            metadata.setdefault("deletionGracePeriodSeconds", 0)
        if finalizers:
            metadata["finalizers"] = finalizers
        if rtype is NAMESPACES:
            new["status"]["phase"] = "Terminating"
        if new == obj:
            return obj
        return self.store.put(rtype, new)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for rtype in (PODS, JOBS):
            for dependent in self.store.items(rtype):
                references = dependent["metadata"].get("ownerReferences") or []
                if any(reference.get("uid") == owner_uid for reference in references):
                    meta = dependent["metadata"]
                    self.mutate(rtype, meta.get("namespace"), meta["name"], _drop_owner(owner_uid))

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> list[Obj]:
        deleted = []
        with self.store.lock:
            for obj in self.list_page(rtype, namespace, labels, fields).items:
                meta = obj["metadata"]
                deleted.append(self.delete(rtype, meta.get("namespace"), meta["name"], options)[0])
        return deleted


def _drop_owner(owner_uid: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        remaining = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("uid") != owner_uid]
        if remaining:
            obj["metadata"]["ownerReferences"] = remaining
        else:
            obj["metadata"].pop("ownerReferences", None)

    return change


def _ns_name(obj: Obj) -> tuple[str | None, str]:
    return obj["metadata"].get("namespace"), obj["metadata"]["name"]
