"""What every Lambda handler does the same way: count by fixed metric names, and map its errors.

Metric names are fixed and what varies is a dimension (``Captures`` with ``Status=running``, not
``Captures_running``), so a dashboard or an alarm names a metric that exists before the first event of a
kind. Errors go one way in all four functions: an expected failure (a ``CaptureError``) is one warning
line, one ``HandlerErrors`` metric with its code as ``ErrorCode``, and a JSON answer; a retryable one is
raised again after that, so Lambda retries the event (and its dead-letter queue keeps it in the end); an
unexpected exception is logged with its traceback, counted as ``ErrorCode=Unexpected`` and raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from eks_capture.errors import CaptureError

ERRORS_METRIC = "HandlerErrors"
UNEXPECTED = "Unexpected"

#: A Lambda handler: the event and the Lambda context in, a JSON-ready answer out.
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def count(name: str, dimension: str, value: str, amount: float = 1) -> None:
    """One metric ``name`` of ``amount``, told apart by ``dimension=value`` (and the function's service)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=amount) as metric:
        metric.add_dimension(name=dimension, value=value)


def maps_errors(logger: Logger, what: str) -> Callable[[Handler], Handler]:
    """Wrap a handler so its errors are mapped as the module says; ``what`` names its work in the log
    line (``"event not acted on: <why>"``)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def mapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                return handler(event, context)
            except CaptureError as error:
                logger.warning(f"{what}: {error.message}", extra={"error": error.to_dict()})
                count(ERRORS_METRIC, "ErrorCode", error.code)
                if error.retryable:
                    raise
                return {"status": "error", "error": error.to_dict()}
            except Exception as error:
                logger.exception(f"{what}: unexpected {type(error).__name__}: {error}")
                count(ERRORS_METRIC, "ErrorCode", UNEXPECTED)
                raise

        return mapped

    return wrap
