"""API errors as the API server writes them: a ``Status`` body with reason, details and code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from localcloud.kube.resources import ResourceType


@dataclass(frozen=True)
class Cause:
    """One field-level problem of an Invalid error (``FieldValueInvalid`` at ``metadata.name``...)."""

    reason: str
    field: str
    message: str


class ApiError(Exception):
    """A request the API server refuses; ``body()`` is the exact ``Status`` object it returns."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        list_meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers: dict[str, str] = headers or {}
        self.list_meta = list_meta or {}

    def body(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta),
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # a webhook's denial may carry none (the field is omitempty)
            status["reason"] = self.reason
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def _details(rtype: ResourceType, name: str | None, kind: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = kind or rtype.plural
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rtype.qualified} "{name}" not found', _details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rtype.qualified} "{name}" already exists', _details(rtype, name))


def conflict(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(rtype, name),
    )


@dataclass
class Invalid:
    """Collects field problems while validating; ``error()`` turns them into one 422 Invalid."""

    causes: list[Cause] = field(default_factory=list)

    def add(self, reason: str, path: str, message: str) -> None:
        self.causes.append(Cause(reason, path, message))

    def invalid_value(self, path: str, value: Any, why: str) -> None:
        shown = (
            f'"{value}"'
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else value
        )
        self.add("FieldValueInvalid", path, f"Invalid value: {shown}: {why}")

    def required(self, path: str, why: str = "") -> None:
        self.add("FieldValueRequired", path, f"Required value{': ' + why if why else ''}")

    def unsupported(self, path: str, value: Any, supported: Sequence[str]) -> None:
        allowed = ", ".join(f'"{item}"' for item in supported)
        self.add("FieldValueNotSupported", path, f'Unsupported value: "{value}": supported values: {allowed}')

    def not_found(self, path: str, value: str) -> None:
        self.add("FieldValueNotFound", path, f'Not found: "{value}"')

    def duplicate(self, path: str, value: str) -> None:
        self.add("FieldValueDuplicate", path, f'Duplicate value: "{value}"')

    def forbidden(self, path: str, why: str) -> None:
        self.add("FieldValueForbidden", path, f"Forbidden: {why}")

    def raise_if_any(self, rtype: ResourceType, name: str) -> None:
        if not self.causes:
            return
        texts = [f"{cause.field}: {cause.message}" for cause in self.causes]
        summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        details = _details(rtype, name, kind=rtype.kind)
        details["causes"] = [
            {"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes
        ]
        raise ApiError(422, "Invalid", f'{rtype.qualified_kind} "{name}" is invalid: {summary}', details)


def forbidden(
    user: str, verb: str, rtype_plural: str, group: str, namespace: str | None, name: str | None
) -> ApiError:
    """403 in the RBAC authorizer's words, naming user, verb, resource and scope."""
    subject = f'{rtype_plural} "{name}"' if name else rtype_plural
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{rtype_plural}" '
        f'in API group "{group}" {scope}'
    )
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = rtype_plural.split("/")[0]
    return ApiError(403, "Forbidden", message, details)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def internal_error(message: str) -> ApiError:
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    accepted = (
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
    )
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {accepted}",
        {"causes": [{"message": f"unsupported content type {content_type}"}]},
    )
