"""PATCH bodies: JSON merge patch (RFC 7386, also used for strategic merge) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from localcloud.kube.status import ApiError, bad_request, unsupported_media_type

MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
JSON_PATCH = "application/json-patch+json"
REJECTED = "the server rejected our request due to an error in our request"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(
            f"the server rejected our request due to an error in our request: invalid path {path}"
        )
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ApiError(
                422,
                "Invalid",
                f"{REJECTED}: doc is missing path: /{'/'.join(parts)}",
            )
    return node


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 add, remove, replace, test (move and copy too); 422 when a path is missing."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        if op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = _get(result, source)
            if op == "move":
                _remove(result, source)
            result = _add(result, parts, copy.deepcopy(value))
        elif op == "add":
            result = _add(result, parts, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            _remove(result, parts)
        elif op == "replace":
            _get(result, parts)
            _remove(result, parts)
            result = _add(result, parts, copy.deepcopy(operation.get("value")))
        elif op == "test":
            if _get(result, parts) != operation.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{REJECTED}: testing value /{'/'.join(parts)} failed",
                )
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return result


def _get(document: Any, parts: list[str]) -> Any:
    node = _parent(document, parts)
    if not parts:
        return node
    try:
        return node[int(parts[-1])] if isinstance(node, list) else node[parts[-1]]
    except (KeyError, IndexError, ValueError):
        raise ApiError(
            422,
            "Invalid",
            f"{REJECTED}: doc is missing path: /{'/'.join(parts)}",
        ) from None


def _add(document: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    node = _parent(document, parts)
    if isinstance(node, list):
        index = len(node) if parts[-1] == "-" else int(parts[-1])
        node.insert(index, value)
    else:
        node[parts[-1]] = value
    return document


def _remove(document: Any, parts: list[str]) -> None:
    _get(document, parts)
    node = _parent(document, parts)
    if isinstance(node, list):
        del node[int(parts[-1])]
    else:
        del node[parts[-1]]


def apply_patch(content_type: str, document: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The patched copy of ``document`` for the request's content type; 415 for apply patches."""
    media = content_type.split(";")[0].strip().lower()
    if media in MERGE_TYPES:
        if not isinstance(patch, dict):
            raise bad_request("merge patch must be a JSON object")
        result = merge_patch(document, patch)
    elif media == JSON_PATCH:
        result = json_patch(document, patch)
    else:
        raise unsupported_media_type(content_type)
    if not isinstance(result, dict):
        raise bad_request("patch result must be an object")
    return result
