"""Who a caller is in the cluster (EKS access entries) and what they may do (RBAC-like rules, per test)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from localcloud.kube.auth import Identity, canonical_arn


@dataclass(frozen=True)
class User:
    """A Kubernetes user: the name RBAC and 403 messages use, and its groups."""

    name: str
    groups: tuple[str, ...] = ("system:authenticated",)


@dataclass(frozen=True)
class Rule:
    """Allow or deny ``verbs`` on ``resources`` in ``api_groups`` and ``namespaces`` for ``subjects``.

    Each field is a tuple of names or ``("*",)``; a subject is a username or ``group:<name>``; the
    namespace ``""`` means cluster scope. A matching deny wins over any allow.
    """

    effect: str
    subjects: tuple[str, ...] = ("*",)
    verbs: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)

    def matches(self, user: User, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        names = {user.name, *(f"group:{g}" for g in user.groups)}
        return (
            ("*" in self.subjects or bool(names & set(self.subjects)))
            and ("*" in self.verbs or verb in self.verbs)
            and ("*" in self.api_groups or group in self.api_groups)
            and ("*" in self.resources or resource in self.resources)
            and ("*" in self.namespaces or (namespace or "") in self.namespaces)
        )


def _tuple(values: str | Iterable[str]) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


def _rule(
    effect: str,
    *,
    subjects: str | Iterable[str] = "*",
    verbs: str | Iterable[str] = "*",
    resources: str | Iterable[str] = "*",
    api_groups: str | Iterable[str] = "*",
    namespaces: str | Iterable[str] = "*",
) -> Rule:
    return Rule(
        effect, _tuple(subjects), _tuple(verbs), _tuple(resources), _tuple(api_groups), _tuple(namespaces)
    )


class Rbac:
    """Identity mapping and rules; by default every authenticated caller may do everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to the default: unknown callers are mapped to their ARN, one rule allows everything."""
        with self._lock:
            self._identities: dict[str, User] = {}
            self._rules: list[Rule] = [Rule("allow")]
            self.map_unknown_callers = True

    def map_identity(self, arn: str, username: str, groups: Iterable[str] = ()) -> None:
        """An access entry: IAM ``arn`` (user, role, or exact assumed-role session) acts as ``username``."""
        with self._lock:
            self._identities[arn] = User(username, ("system:authenticated", *groups))

    def clear_rules(self) -> None:
        """Remove every rule, the default allow included: nothing is permitted until allowed."""
        with self._lock:
            self._rules = []

    def allow(self, **match: str | Iterable[str]) -> None:
        """Allow requests matching ``subjects``/``verbs``/``resources``/``api_groups``/``namespaces``."""
        self._add(_rule("allow", **match))

    def deny(self, **match: str | Iterable[str]) -> None:
        """Deny requests matching the same keywords as ``allow``; a deny wins over any allow."""
        self._add(_rule("deny", **match))

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def user_for(self, identity: Identity) -> User | None:
        """The mapped user for a caller, or None (EKS answers 401) when it has no access entry."""
        with self._lock:
            for arn in (identity.arn, canonical_arn(identity.arn)):
                if arn in self._identities:
                    return self._identities[arn]
            return User(identity.arn) if self.map_unknown_callers else None

    def allows(self, user: User, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        with self._lock:
            rules = [rule for rule in self._rules if rule.matches(user, verb, group, resource, namespace)]
        return bool(rules) and all(rule.effect == "allow" for rule in rules)
