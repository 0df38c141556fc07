"""RBAC escalation prevention: nobody grants, through a role or a binding, permissions they do not hold.

As the API server's RBAC storage does (pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}
/policybased, validation.ConfirmNoEscalation): a Role or ClusterRole is written only when the requester's
own RBAC rules (its ClusterRoleBindings, and its RoleBindings in the object's namespace) cover every rule
it holds, or the requester may ``escalate`` that kind; a binding is written only when the requester may
``bind`` the referenced role, or already holds every rule of it. Members of ``system:masters`` skip the
check. The requester's own rules are RBAC's only: an EKS access policy is a webhook authorizer, so it
counts for ``escalate`` and ``bind`` (the authorizer's verbs) but not as rules held. The refusal is 403
with the server's words: ``user "u" (groups=["g"]) is attempting to grant RBAC permissions not currently
held:`` and each missing rule, compacted and sorted, one a line.
"""

from __future__ import annotations

from typing import Any

from localcloud.kube.access import User
from localcloud.kube.authorization import Attributes, Authorizer
from localcloud.kube.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, ResourceType
from localcloud.kube.status import ApiError, not_found

RBAC_GROUP = "rbac.authorization.k8s.io"
SYSTEM_MASTERS = "system:masters"
Rule = dict[str, list[str]]


def breakdown(rule: dict[str, Any]) -> list[Rule]:
    """The rule as rules of one verb, one group, one resource and at most one name (BreakdownRule)."""
    verbs, names = rule.get("verbs") or [], rule.get("resourceNames") or []
    atoms: list[Rule] = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                atoms += [{**base, "resourceNames": [name]} for name in names] if names else [base]
    for url in rule.get("nonResourceURLs") or []:
        atoms += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs]
    return atoms


def _has_all(owned: list[str], wanted: list[str]) -> bool:
    return all(item in owned for item in wanted)


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or f"*/{path.split('/', 1)[1]}" not in owned:
            return False
    return True


def _urls_cover(owned: list[str], wanted: list[str]) -> bool:
    return all(
        any(o in ("*", url) or (o.endswith("*") and url.startswith(o[:-1])) for o in owned) for url in wanted
    )


def covers(owner: dict[str, Any], atom: Rule) -> bool:
    """Whether one held rule covers one broken-down rule (ruleCovers)."""
    verbs, groups, names = (
        owner.get("verbs") or [],
        owner.get("apiGroups") or [],
        owner.get("resourceNames") or [],
    )
    wanted_names = atom.get("resourceNames", [])
    return (
        ("*" in verbs or _has_all(verbs, atom["verbs"]))
        and ("*" in groups or _has_all(groups, atom.get("apiGroups", [])))
        and _resources_cover(owner.get("resources") or [], atom.get("resources", []))
        and (not names or (bool(wanted_names) and _has_all(names, wanted_names)))
        and _urls_cover(owner.get("nonResourceURLs") or [], atom.get("nonResourceURLs", []))
    )


def _compact(missing: list[Rule]) -> list[Rule]:
    """Rules of one group, one resource and at most one name merged across verbs (CompactRules)."""
    merged: dict[tuple[str, str, tuple[str, ...]], Rule] = {}
    others: list[Rule] = []
    for atom in missing:
        if "nonResourceURLs" in atom:
            others.append(atom)
            continue
        key = (atom["apiGroups"][0], atom["resources"][0], tuple(atom.get("resourceNames", [])))
        if key in merged:
            merged[key]["verbs"] = [*merged[key]["verbs"], *atom["verbs"]]
        else:
            merged[key] = {k: list(v) for k, v in atom.items()}
    return [*others, *merged.values()]


def _go_strings(values: list[str]) -> str:
    return "[" + " ".join(f'"{value}"' for value in values) + "]"


def compact_string(rule: Rule) -> str:
    """A rule as the message writes it (CompactString): ``{APIGroups:["batch"], Resources:["jobs"], ...}``."""
    fields = ("APIGroups", "Resources", "NonResourceURLs", "ResourceNames", "Verbs")
    keys = ("apiGroups", "resources", "nonResourceURLs", "resourceNames", "verbs")
    parts = [
        f"{label}:{_go_strings(rule[key])}" for label, key in zip(fields, keys, strict=True) if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


def _refused(rtype: ResourceType, name: str, user: User, missing: list[Rule]) -> ApiError:
    held = "\n".join(sorted({compact_string(rule) for rule in _compact(missing)}))
    why = (
        f'user "{user.name}" (groups={_go_strings(list(user.groups))}) is attempting to grant RBAC '
        f"permissions not currently held:\n{held}"
    )
    details = {"name": name, "group": RBAC_GROUP, "kind": rtype.plural}
    return ApiError(403, "Forbidden", f'{rtype.qualified} "{name}" is forbidden: {why}', details)


RBAC_TYPES = (ROLES, CLUSTERROLES, ROLEBINDINGS, CLUSTERROLEBINDINGS)


def confirm_no_escalation(
    authorizer: Authorizer, user: User, rtype: ResourceType, namespace: str | None, obj: dict[str, Any]
) -> None:
    """403 when writing role or binding ``obj`` would grant what ``user`` does not hold; 404 when a
    binding's role does not exist. Any other kind passes."""
    if rtype not in RBAC_TYPES or SYSTEM_MASTERS in user.groups:
        return
    name, scope = (obj.get("metadata") or {}).get("name", ""), namespace or ""
    if rtype in (ROLES, CLUSTERROLES):
        if _allowed(authorizer, user, "escalate", rtype.plural, "", scope):
            return
        rules = obj.get("rules") or []
    else:
        ref = obj.get("roleRef") or {}
        role_type, role_name = (
            (CLUSTERROLES if ref.get("kind") == "ClusterRole" else ROLES),
            ref.get("name", ""),
        )
        if _allowed(authorizer, user, "bind", role_type.plural, role_name, scope):
            return
        role = authorizer.store.get(role_type, None if role_type is CLUSTERROLES else scope, role_name)
        if role is None:
            raise not_found(role_type, role_name)
        rules = role.get("rules") or []
    held = authorizer.rbac_rules(user, scope)
    missing = [atom for rule in rules for atom in breakdown(rule) if not any(covers(h, atom) for h in held)]
    if missing:
        raise _refused(rtype, name, user, missing)


def _allowed(authorizer: Authorizer, user: User, verb: str, plural: str, name: str, namespace: str) -> bool:
    request = Attributes(user, verb, RBAC_GROUP, plural, name=name, namespace=namespace)
    return authorizer.decide(request).allowed
