"""Expected failures become one line and an exit code by kind; bugs are left alone."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from eks_capture.errors import CaptureNotFound, CaptureRejected
from eks_capture_cli.failures import (
    EXIT_BAD_INPUT,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    CommandError,
    explain,
)


def _client_error(code: str, message: str = "boom", operation: str = "Query") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("error", "exit_code", "start"),
    [
        (NoCredentialsError(), EXIT_DENIED, "no AWS credentials found"),
        (
            _client_error("AccessDeniedException", "not allowed"),
            EXIT_DENIED,
            "access denied on Query: not allowed",
        ),
        (_client_error("AccessDenied", operation="GetObject"), EXIT_DENIED, "access denied on GetObject"),
        (_client_error("ExpiredToken"), EXIT_DENIED, "AWS credentials rejected (ExpiredToken)"),
        (
            _client_error("ResourceNotFoundException", "no table"),
            EXIT_NOT_FOUND,
            "not found on Query: no table",
        ),
        (_client_error("ThrottlingException"), EXIT_FAILED, "AWS Query failed (ThrottlingException)"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), EXIT_FAILED, "cannot reach AWS"),
        (
            CaptureRejected("detail.filter", "quotes are refused"),
            EXIT_BAD_INPUT,
            "request rejected: detail.filter",
        ),
        (CaptureNotFound("cap-x"), EXIT_FAILED, "no capture session cap-x"),
        (CommandError("stack s not found", 3), 3, "stack s not found"),
    ],
)
def test_each_expected_failure_has_one_line_and_its_exit_code(
    error: BaseException, exit_code: int, start: str
) -> None:
    failure = explain(error)

    assert failure is not None
    assert failure.exit_code == exit_code
    assert failure.message.startswith(start)
    assert "\n" not in failure.message


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("y"), AssertionError()])
def test_a_bug_is_not_disguised_as_an_expected_failure(error: BaseException) -> None:
    assert explain(error) is None
