"""Domain errors: each says what went wrong in words and as a dict a handler can return or log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class CaptureError(Exception):
    """Base of every error the domain raises on purpose; ``to_dict`` is the structured response."""

    code: ClassVar[str] = "CaptureError"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready dict: code, message, retryable and the error's own fields."""
        return {"error": self.code, "message": self.message, "retryable": self.retryable, **self.details}


class SettingsInvalid(CaptureError):  # noqa: N818 - the domain names these by what happened
    """An environment variable is missing or wrong; raised at cold start, before any event is handled."""

    code = "SettingsInvalid"

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}", variable=variable)
        self.variable = variable


@dataclass(frozen=True)
class FieldProblem:
    """One bad field of a rejected input, as a dotted path (``detail.targets.nodes.0``) and a message."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The problem as a JSON-ready dict."""
        return {"field": self.field, "message": self.message}


class CaptureRejected(CaptureError):  # noqa: N818 - the domain names these by what happened
    """An event or option is invalid; nothing was created. ``field`` names the first bad field."""

    code = "CaptureRejected"

    def __init__(self, field: str, message: str, problems: Sequence[FieldProblem] = ()) -> None:
        all_problems = tuple(problems) or (FieldProblem(field, message),)
        super().__init__(
            f"{field}: {message}",
            field=field,
            problems=[problem.to_dict() for problem in all_problems],
        )
        self.field = field
        self.problems = all_problems


class CaptureNotFound(CaptureError):  # noqa: N818 - the domain names these by what happened
    """A stop or lookup named a capture id that has no session."""

    code = "CaptureNotFound"

    def __init__(self, capture_id: str) -> None:
        super().__init__(f"no capture session {capture_id}", capture_id=capture_id)


class ClusterNotFound(CaptureError):  # noqa: N818 - the domain names these by what happened
    """eks:DescribeCluster does not know the cluster in this account and region."""

    code = "ClusterNotFound"

    def __init__(self, cluster: str) -> None:
        super().__init__(f"EKS cluster {cluster} not found", cluster=cluster)


class ClusterAccessDenied(CaptureError):  # noqa: N818 - the domain names these by what happened
    """The function's role may not do what it asked; ``missing`` names the access entry or RBAC rule."""

    code = "ClusterAccessDenied"

    def __init__(self, cluster: str, missing: str) -> None:
        super().__init__(f"access denied on cluster {cluster}: {missing}", cluster=cluster, missing=missing)


class ClusterRefused(CaptureError):  # noqa: N818 - the domain names these by what happened
    """The cluster refused one request for what it asks (admission, validation): asked again unchanged, it
    is refused again. ``refused_by`` names who said no; ``api_message`` is the cluster's own words."""

    code = "ClusterRefused"

    def __init__(self, cluster: str, operation: str, status: int, refused_by: str, api_message: str) -> None:
        super().__init__(
            f"{operation} refused by {refused_by} (HTTP {status}): {api_message}",
            cluster=cluster,
            operation=operation,
            status=status,
            refused_by=refused_by,
            api_message=api_message,
        )


class ApiThrottled(CaptureError):  # noqa: N818 - the domain names these by what happened
    """An API kept throttling after the retries; the whole event may be retried later."""

    code = "ApiThrottled"
    retryable = True

    def __init__(self, service: str, operation: str, attempts: int) -> None:
        super().__init__(
            f"{service} {operation} throttled after {attempts} attempts",
            service=service,
            operation=operation,
            attempts=attempts,
        )


class NodeLocksNotTaken(CaptureError):  # noqa: N818 - the domain names these by what happened
    """DynamoDB took none of a capture's node locks, for a reason that may pass on a later try (throttling):
    the session stays ``starting`` with each node's reason, and Lambda's retry of the event starts it."""

    code = "NodeLocksNotTaken"
    retryable = True

    def __init__(self, capture_id: str, nodes: int, why: str) -> None:
        super().__init__(
            f"capture {capture_id}: no node lock taken for its {nodes} node(s): {why}",
            capture_id=capture_id,
            nodes=nodes,
        )


class FileWritesRaced(CaptureError):  # noqa: N818 - the domain names these by what happened
    """A file item changed under each of the indexer's conditional writes (other versions of its object
    indexed meanwhile); Lambda's retry of the event finds it settled."""

    code = "FileWritesRaced"
    retryable = True

    def __init__(self, s3_key: str, attempts: int) -> None:
        super().__init__(
            f"{s3_key}: its file item changed under each of {attempts} conditional writes",
            s3_key=s3_key,
            attempts=attempts,
        )


class ClusterUnreachable(CaptureError):  # noqa: N818 - the domain names these by what happened
    """The cluster's API kept failing (5xx, dropped connections) after the retries; retry the event later."""

    code = "ClusterUnreachable"
    retryable = True

    def __init__(self, cluster: str, operation: str, cause: str) -> None:
        super().__init__(
            f"cluster {cluster} API unavailable during {operation}: {cause}",
            cluster=cluster,
            operation=operation,
            cause=cause,
        )
