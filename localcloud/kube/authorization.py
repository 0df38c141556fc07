"""Authorization as EKS does it: default deny; EKS access policies and RBAC objects are what allow.

A request is allowed when the caller's access entry holds an access policy whose scope covers the
request and whose Kubernetes role allows it, or when a ClusterRoleBinding, or a RoleBinding of the
request's namespace, binds a role that allows it to the caller's name, one of its groups, or (for a
``system:serviceaccount:<ns>:<name>`` user) its service account. Rules match as the RBAC authorizer
matches them (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac): verbs, apiGroups, resources with
``<resource>/<subresource>`` and ``*/<subresource>``, resourceNames, nonResourceURLs with a trailing
``*``. A binding to a role that does not exist allows nothing and is named in the refusal's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from localcloud.kube.access import User
from localcloud.kube.bootstrap import CLUSTER_ROLES
from localcloud.kube.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    ROLEBINDINGS,
    ROLES,
    ResourceType,
)
from localcloud.kube.status import ApiError
from localcloud.kube.store import Store

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in the authorizer's terms (a non-resource request has a ``path``)."""

    user: User
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return not self.path


@dataclass(frozen=True)
class Decision:
    """Allowed or not, with the reason an access review reports."""

    allowed: bool
    reason: str = ""


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(rule_resources: list[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for rule in rule_resources:
        if rule in ("*", combined):
            return True
        if subresource and rule == f"*/{subresource}":
            return True
    return False


def _path_matches(rule_paths: list[str], path: str) -> bool:
    for rule in rule_paths:
        if rule in ("*", path) or (rule.endswith("*") and path.startswith(rule[:-1])):
            return True
    return False


def rule_allows(rule: dict[str, Any], request: Attributes) -> bool:
    """Whether one PolicyRule allows the request."""
    if not _matches(rule.get("verbs") or [], request.verb):
        return False
    if not request.is_resource_request:
        return _path_matches(rule.get("nonResourceURLs") or [], request.path)
    names = rule.get("resourceNames") or []
    return (
        _matches(rule.get("apiGroups") or [], request.api_group)
        and _resource_matches(rule.get("resources") or [], request.resource, request.subresource)
        and (not names or request.name in names)
    )


def _subject_kind_name(subject: dict[str, Any], binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{namespace}/{name}"'
    return f'{kind} "{name}"'


def subject_applies(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    """Whether a binding's subject is the user, one of its groups, or its service account."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


class Authorizer:
    """The cluster's authorizer chain: EKS access policies, then RBAC over the stored objects."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def decide(self, request: Attributes) -> Decision:
        for policy in request.user.policies:
            in_scope = request.is_resource_request and policy.covers(request.namespace or None)
            rules = CLUSTER_ROLES[policy.cluster_role]
            if (not policy.namespaces or in_scope) and any(rule_allows(r, request) for r in rules):
                return Decision(True)
        errors: list[str] = []
        for binding, role_kind, rules in self._bound_rules(request, errors):
            for rule in rules:
                if rule_allows(rule, request):
                    return Decision(True, self._allowed_reason(binding, role_kind, request.user))
        reason = f"RBAC: {errors[0] if len(errors) == 1 else '[' + ', '.join(errors) + ']'}" if errors else ""
        return Decision(False, reason)

    def rbac_rules(self, user: User, namespace: str) -> list[dict[str, Any]]:
        """Every RBAC rule bound to ``user`` cluster-wide and in ``namespace`` (the rule resolver's RulesFor;
        EKS access policies are a webhook's, not rules)."""
        request = Attributes(user, "", namespace=namespace)
        return [rule for _, _, rules in self._bound_rules(request, []) for rule in rules]

    def _bound_rules(
        self, request: Attributes, errors: list[str]
    ) -> Iterator[tuple[dict[str, Any], str, list[dict[str, Any]]]]:
        """(binding, role kind, rules) of every binding that applies to the user, cluster ones first."""
        scopes: list[tuple[ResourceType, str | None]] = [(CLUSTERROLEBINDINGS, None)]
        if request.namespace:
            scopes.append((ROLEBINDINGS, request.namespace))
        for rtype, namespace in scopes:
            for binding in self.store.items(rtype, namespace):
                bound_in = binding["metadata"].get("namespace", "")
                subjects = binding.get("subjects") or []
                if not any(subject_applies(s, request.user, bound_in) for s in subjects):
                    continue
                ref = binding.get("roleRef") or {}
                role_kind, role_name = ref.get("kind", ""), ref.get("name", "")
                role = (
                    self.store.get(CLUSTERROLES, None, role_name)
                    if role_kind == "ClusterRole"
                    else self.store.get(ROLES, bound_in, role_name)
                )
                if role is None:
                    qualified = "clusterroles" if role_kind == "ClusterRole" else "roles"
                    errors.append(f'{qualified[:-1]}.rbac.authorization.k8s.io "{role_name}" not found')
                    continue
                yield binding, role_kind, role.get("rules") or []

    @staticmethod
    def _allowed_reason(binding: dict[str, Any], role_kind: str, user: User) -> str:
        metadata = binding["metadata"]
        bound_in = metadata.get("namespace", "")
        kind = (
            f'RoleBinding "{metadata["name"]}/{bound_in}"'
            if bound_in
            else (f'ClusterRoleBinding "{metadata["name"]}"')
        )
        subject = next(
            _subject_kind_name(s, bound_in)
            for s in binding.get("subjects") or []
            if subject_applies(s, user, bound_in)
        )
        role = binding["roleRef"]["name"]
        return f'RBAC: allowed by {kind} of {role_kind} "{role}" to {subject}'


def forbidden(request: Attributes, reason: str = "") -> ApiError:
    """403 in the API server's words (responsewriters.ForbiddenStatusError)."""
    user = request.user.name
    if not request.is_resource_request:
        message = f'forbidden: User "{user}" cannot {request.verb} path "{request.path}"'
        return ApiError(403, "Forbidden", f"{message}: {reason}" if reason else message, {})
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    group = request.api_group
    why = f'User "{user}" cannot {request.verb} resource "{resource}" in API group "{group}" {scope}'
    if reason:
        why = f"{why}: {reason}"
    qualified = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
    subject = f'{qualified} "{request.name}"' if request.name else qualified
    details: dict[str, Any] = {}
    if request.name:
        details["name"] = request.name
    if request.api_group:
        details["group"] = request.api_group
    details["kind"] = request.resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", details)
