"""Every expected failure of a command becomes one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from eks_capture.errors import CaptureError, CaptureRejected

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
_NOT_FOUND = {"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "ResourceNotFound"}
_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}


class CommandError(Exception):
    """A failure the operator can act on: its message is the whole output."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def explain(error: BaseException) -> CommandError | None:
    """The one line (and exit code) an expected error becomes; None for a bug."""
    if isinstance(error, CommandError):
        return error
    if isinstance(error, CaptureRejected):
        return CommandError(f"request rejected: {error.message}", EXIT_BAD_INPUT)
    if isinstance(error, CaptureError):
        return CommandError(error.message)
    # botocore loads here, not at every start-up: ``merge`` never needs it
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return CommandError("no AWS credentials found: set a profile, AWS_ACCESS_KEY_ID or SSO", EXIT_DENIED)
    if isinstance(error, NoRegionError):
        return CommandError("no AWS region: set AWS_REGION or a profile's region", EXIT_BAD_INPUT)
    if isinstance(error, EndpointConnectionError):
        return CommandError(f"cannot reach AWS: {error}")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        operation = error.operation_name
        if code in _DENIED:
            return CommandError(f"access denied on {operation}: {message}", EXIT_DENIED)
        if code in _CREDENTIALS:
            return CommandError(f"AWS credentials rejected ({code}): {message}", EXIT_DENIED)
        if code in _NOT_FOUND:
            return CommandError(f"not found on {operation}: {message}", EXIT_NOT_FOUND)
        return CommandError(f"AWS {operation} failed ({code}): {message}")
    return None


def fail(failure: CommandError) -> typer.Exit:
    """Print the failure's line on stderr; the Exit to raise (rich loads here, not at every start-up)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(failure.message)}")
    return typer.Exit(failure.exit_code)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so expected errors end it with one line and an exit code (signature kept for typer)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            failure = explain(error)
            if failure is None:
                raise
            raise fail(failure) from None

    return wrapper
