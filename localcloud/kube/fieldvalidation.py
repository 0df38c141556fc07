"""Server-side field validation: the ``fieldValidation`` query parameter (Strict, Warn, Ignore).

A real API server decodes a create, update or patch body strictly against the kind's Go type and, for
each unknown or duplicate field, refuses the request (Strict: 400 ``... cannot be handled as a Job:
strict decoding error: unknown field "spec.foo"`` for a create or update, 422 ``patch: Invalid value``
for a patch), answers with a ``Warning: 299 - "unknown field \\"spec.foo\\""`` header (Warn, the default
since 1.27), or says nothing (Ignore); in every case an unknown field is dropped, never stored.

The schema is the one the real server's OpenAPI publishes, as the ``kubernetes`` client's generated
models carry it (``openapi_types`` and ``attribute_map`` per definition), so a field is known exactly when
the API defines it. Field paths read as the decoder writes them: ``spec.template.spec.containers[0].foo``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import models

from localcloud.kube.patches import JSON_PATCH, merge_patch
from localcloud.kube.resources import ResourceType
from localcloud.kube.status import ApiError, bad_request
from localcloud.kube.store import clone

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
DIRECTIVES = ("", IGNORE, STRICT, WARN)
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_LIST = re.compile(r"List\[(.+)\]$")
_MAP = re.compile(r"Dict\[str, (.+)\]$")
OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


class _Pairs(dict[str, Any]):
    """A JSON object that remembers its keys in order, repeats included (the last value wins, as in Go)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.keys_in_order = [key for key, _ in pairs]


@dataclass
class Findings:
    """The strict decoding errors of one body, in the order the decoder meets them."""

    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "strict decoding error: " + ", ".join(self.errors)


def directive(verb: str, query: Mapping[str, str]) -> str:
    """The request's directive (Warn when absent); 422 naming the options kind for an unknown one."""
    value = query.get("fieldValidation", "")
    if value not in DIRECTIVES:
        supported = ", ".join(f'"{item}"' for item in DIRECTIVES)
        message = f'fieldValidation: Unsupported value: "{value}": supported values: {supported}'
        cause = {"reason": "FieldValueNotSupported", "message": message.split(": ", 1)[1]}
        cause["field"] = "fieldValidation"
        raise ApiError(
            422,
            "Invalid",
            f'{OPTIONS_KIND[verb]}.meta.k8s.io "" is invalid: {message}',
            {"group": "meta.k8s.io", "kind": OPTIONS_KIND[verb], "causes": [cause]},
        )
    return value or WARN


@functools.cache
def _definition(type_name: str) -> dict[str, str] | None:
    """JSON field name -> type string of an OpenAPI definition (``V1JobSpec``), None for a free-form one."""
    model = getattr(models, type_name, None)
    if model is None:
        return None
    names: dict[str, str] = model.attribute_map
    types: dict[str, str] = model.openapi_types
    return {names[attribute]: types[attribute] for attribute in names}


def definition_of(rtype: ResourceType) -> str:
    """The OpenAPI definition of a served kind: ``V1Job``, or ``CoreV1Event`` where the client prefixes it."""
    candidates = [f"V1{rtype.kind}", f"CoreV1{rtype.kind}"]
    if not rtype.group:
        candidates.reverse()
    for name in candidates:
        if _definition(name) is not None:
            return name
    raise KeyError(f"no OpenAPI definition for {rtype.qualified_kind}")


def _walk(value: Any, type_name: str, path: str, findings: Findings, patch: bool) -> Any:
    """The value with unknown fields dropped; each unknown or repeated field noted at its path."""
    listed, mapped = _LIST.match(type_name), _MAP.match(type_name)
    if listed and isinstance(value, list):
        inner = listed[1]
        return [_walk(item, inner, f"{path}[{i}]", findings, patch) for i, item in enumerate(value)]
    if mapped and isinstance(value, dict):
        inner = mapped[1]
        keys = _distinct_keys(value, path, findings)
        return {key: _walk(value[key], inner, _join(path, key), findings, patch) for key in keys}
    fields = _definition(type_name)
    if fields is None or not isinstance(value, dict):
        return clone(value)  # a free-form value: plain dicts and lists, nothing of _Pairs' bookkeeping left
    kept: dict[str, Any] = {}
    for key in _distinct_keys(value, path, findings):
        if patch and key.startswith("$"):  # strategic merge directives ($patch, $setElementOrder/...)
            kept[key] = value[key]
        elif key in fields:
            kept[key] = _walk(value[key], fields[key], _join(path, key), findings, patch)
        elif not (patch and value[key] is None):  # a patch's null deletes: nothing unknown remains
            findings.errors.append(f'unknown field "{_join(path, key)}"')
    return kept


def _distinct_keys(value: dict[str, Any], path: str, findings: Findings) -> list[str]:
    """The object's keys in document order, each repeat noted as a duplicate field and skipped."""
    keys: list[str] = []
    for key in value.keys_in_order if isinstance(value, _Pairs) else list(value):
        if key in keys:
            findings.errors.append(f'duplicate field "{_join(path, key)}"')
        else:
            keys.append(key)
    return keys


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse(raw_body: bytes) -> Any:
    """The body as JSON, each object remembering repeated keys."""
    return json.loads(raw_body, object_pairs_hook=_Pairs)


def check(rtype: ResourceType, body: Any, content_type: str = "") -> tuple[Any, Findings]:
    """The body with unknown fields dropped, and what a strict decoder says about it.

    JSON patches (a list of operations) are passed through unchecked: their values are not objects of
    the kind, and the real server judges the patched object instead.
    """
    findings = Findings()
    if content_type.startswith(JSON_PATCH) or not isinstance(body, dict):
        return body, findings
    patch = bool(content_type)
    return _walk(body, definition_of(rtype), "", findings, patch), findings


def refusal(
    rtype: ResourceType,
    verb: str,
    raw_body: bytes,
    body: Any,
    findings: Findings,
    content_type: str,
    stored: Any,
) -> ApiError:
    """The Strict refusal, worded as the real handler words it for a create/update or for a patch."""
    if verb != "patch":
        kind, api_version = body.get("kind"), str(body.get("apiVersion") or "")
        if kind:
            version = api_version.rsplit("/", 1)[-1]
            return bad_request(
                f'{kind} in version "{version}" cannot be handled as a {rtype.kind}: {findings.text()}'
            )
        head = raw_body[:30].decode(errors="replace")
        summary = head if len(raw_body) <= 30 else head + " ..."
        unrecognized = f"the object provided is unrecognized (must be of type {rtype.kind})"
        return bad_request(f"{unrecognized}: {findings.text()} ({summary})")
    if content_type.startswith(STRATEGIC_MERGE_PATCH):
        shown = go_value(body)
    else:
        shown = json.dumps(merge_patch(copy.deepcopy(stored), body), separators=(",", ":"))
    message = f"Invalid value: {json.dumps(shown)}: {findings.text()}"
    cause = {"reason": "FieldValueInvalid", "message": message, "field": "patch"}
    return ApiError(422, "Invalid", f' "" is invalid: patch: {message}', {"causes": [cause]})


def go_value(value: Any) -> str:
    """``fmt.Sprintf("%+v", v)`` of a decoded JSON value: how the strategic-merge refusal shows the patch."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_value(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def warning_header(text: str) -> str:
    """One ``Warning`` header value as the API server writes it (code 299, agent ``-``, quoted text)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
