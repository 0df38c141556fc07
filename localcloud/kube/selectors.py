"""Label and field selectors: the query-string syntax and the structured form used in specs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localcloud.kube.status import ApiError, bad_request

_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key op values`` with op in, notin, exists, !exists (= is in, != is notin)."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


LabelSelector = tuple[Requirement, ...]


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _KEY_NAME.match(name) or len(prefix) > 253:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}"')


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f'unable to parse requirement: values[0]: Invalid value: "{value}"')


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the ``labelSelector`` query syntax (=, ==, !=, in, notin, exists, !exists); 400 if malformed."""
    if not text.strip():
        return ()
    requirements = []
    for term in _split_terms(text):
        if match := _SET.match(term):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            for value in values:
                _check_value(value)
            requirement = Requirement(match["key"], match["op"], values)
        elif match := _EQ.match(term):
            _check_value(match["value"])
            operator = "notin" if match["op"] == "!=" else "in"
            requirement = Requirement(match["key"], operator, frozenset({match["value"]}))
        elif match := _EXISTS.match(term):
            requirement = Requirement(match["key"], "!exists" if match["neg"] else "exists")
        else:
            raise bad_request(f"unable to parse requirement: found '{term.strip()}', expected: identifier")
        _check_key(requirement.key)
        requirements.append(requirement)
    return tuple(requirements)


def structured_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as requirements."""
    if not selector:
        return ()
    requirements = [
        Requirement(k, "in", frozenset({v})) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators[expression["operator"]]
        requirements.append(
            Requirement(expression["key"], operator, frozenset(expression.get("values") or ()))
        )
    return tuple(requirements)


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in selector)


FIELD_PATHS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "pods": {
        "spec.nodeName": lambda o: o["spec"].get("nodeName", ""),
        "status.phase": lambda o: o.get("status", {}).get("phase", ""),
        "spec.restartPolicy": lambda o: o["spec"].get("restartPolicy", ""),
        "spec.schedulerName": lambda o: o["spec"].get("schedulerName", ""),
        "spec.serviceAccountName": lambda o: o["spec"].get("serviceAccountName", ""),
        "spec.hostNetwork": lambda o: str(bool(o["spec"].get("hostNetwork", False))).lower(),
        "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
    },
    "nodes": {
        "spec.unschedulable": lambda o: str(bool(o.get("spec", {}).get("unschedulable", False))).lower()
    },
    "jobs": {"status.successful": lambda o: str(o.get("status", {}).get("succeeded", 0))},
    "namespaces": {"status.phase": lambda o: o.get("status", {}).get("phase", "")},
    "events": {
        f"involvedObject.{field}": (lambda o, f=field: str((o.get("involvedObject") or {}).get(f, "")))
        for field in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    }
    | {
        "reason": lambda o: o.get("reason", ""),
        "type": lambda o: o.get("type", ""),
        "source": lambda o: (o.get("source") or {}).get("component", ""),
    },
}
_COMMON: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}

FieldSelector = tuple[tuple[str, bool, str, Callable[[dict[str, Any]], str]], ...]


def parse_field_selector(plural: str, text: str) -> FieldSelector:
    """Parse ``fieldSelector`` (=, ==, != on the fields this resource indexes); 400 on an unknown field."""
    if not text.strip():
        return ()
    known = {**_COMMON, **FIELD_PATHS.get(plural, {})}
    terms = []
    for term in text.split(","):
        match = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, operator, value = match.groups()
        if path not in known:
            raise ApiError(400, "BadRequest", f"field label not supported: {path}")
        terms.append((path, operator == "!=", value, known[path]))
    return tuple(terms)


def fields_match(selector: FieldSelector, obj: dict[str, Any]) -> bool:
    return all((getter(obj) == value) != negate for _, negate, value, getter in selector)
