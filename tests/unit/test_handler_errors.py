"""Every handler maps its errors one way: one warning line, one ``HandlerErrors`` metric by code, an answer.

Powertools' own Logger and metrics write what CloudWatch would ingest (JSON log lines and EMF documents on
stdout); the tests read those lines.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from eks_capture.errors import ApiThrottled, CaptureError, CaptureRejected, ClusterNotFound, NodeLocksNotTaken
from eks_capture.handlers import count, maps_errors


@pytest.fixture(autouse=True)
def _powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "trigger")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EksCapture")


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def logs() -> io.StringIO:
    """Where the handler's Logger writes (a logger of its own: Powertools configures a name once)."""
    return io.StringIO()


def _metrics(lines: list[dict[str, Any]]) -> list[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every EMF metric written."""
    found = []
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            (dimensions,) = directive["Dimensions"]
            for metric in directive["Metrics"]:
                found.append((metric["Name"], {d: line[d] for d in dimensions}, line[metric["Name"]][0]))
    return found


def _handler(error: Exception | None, logs: io.StringIO) -> Any:
    @maps_errors(Logger(service=f"test-{uuid.uuid4().hex}", stream=logs), "event not acted on")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if error is not None:
            raise error
        return {"status": "running"}

    return handler


@pytest.mark.parametrize(
    ("case", "error"),
    [
        (
            "bad input",
            CaptureRejected("detail.cluster", "cluster staging is not one of this stack's clusters"),
        ),
        ("a missing cluster", ClusterNotFound("shop-prod")),
    ],
)
def test_an_expected_error_is_one_line_one_metric_and_an_answer(
    case: str, error: CaptureRejected | ClusterNotFound, capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    answer = _handler(error, logs)({}, None)

    assert answer == {"status": "error", "error": error.to_dict()}
    assert _metrics(_lines(capsys.readouterr().out)) == [
        ("HandlerErrors", {"ErrorCode": error.code, "service": "trigger"}, 1.0)
    ]
    warnings = [line for line in _lines(logs.getvalue()) if line["level"] == "WARNING"]
    assert [w["message"] for w in warnings] == [f"event not acted on: {error.message}"]
    assert warnings[0]["error"] == error.to_dict()


@pytest.mark.parametrize(
    "error",
    [
        ApiThrottled("eks", "DescribeCluster", 8),
        NodeLocksNotTaken(
            "cap-20261125T031200Z-0a1b2c3d",
            210,
            "TransactionCanceledException (ThrottlingError) after 8 attempts: Throughput exceeds the current "
            "capacity of your table or index.",
        ),
    ],
    ids=["an API throttled past its retries", "no node lock taken, DynamoDB throttling"],
)
def test_a_retryable_error_is_counted_then_raised_for_lambda_to_retry(
    error: CaptureError, capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    with pytest.raises(type(error)):
        _handler(error, logs)({}, None)

    assert _metrics(_lines(capsys.readouterr().out)) == [
        ("HandlerErrors", {"ErrorCode": error.code, "service": "trigger"}, 1.0)
    ]
    (warning,) = _lines(logs.getvalue())
    assert warning["level"] == "WARNING"
    assert warning["message"] == f"event not acted on: {error.message}"
    assert warning["error"] == error.to_dict() | {"retryable": True}


def test_an_unexpected_exception_is_logged_with_its_traceback_counted_and_raised(
    capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    with pytest.raises(KeyError):
        _handler(KeyError("nodes"), logs)({}, None)

    assert _metrics(_lines(capsys.readouterr().out)) == [
        ("HandlerErrors", {"ErrorCode": "Unexpected", "service": "trigger"}, 1.0)
    ]
    (logged,) = _lines(logs.getvalue())
    assert logged["level"] == "ERROR"
    assert "KeyError" in logged["exception"]


def test_a_handler_that_succeeds_answers_unchanged_and_counts_nothing(
    capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    assert _handler(None, logs)({}, None) == {"status": "running"}
    assert _lines(capsys.readouterr().out) == _lines(logs.getvalue()) == []


def test_a_count_has_a_fixed_name_and_the_varying_part_as_a_dimension(
    capsys: pytest.CaptureFixture[str],
) -> None:
    count("JobsReaped", "Reason", "expired", 3)

    assert _metrics(_lines(capsys.readouterr().out)) == [
        ("JobsReaped", {"Reason": "expired", "service": "trigger"}, 3.0)
    ]
