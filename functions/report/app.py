"""Report: a "Capture Closed" event in, the capture's report stored and its end notification sent."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.captures.deps import Deps
from eks_capture.events.closings import parse_capture_closed
from eks_capture.handlers import count, maps_errors
from eks_capture.report import delivery
from eks_capture.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
deps = Deps.for_settings(settings, uses=("s3", "sns"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@maps_errors(logger, "event not reported")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    closed = parse_capture_closed(event, expected_account=settings.expected_account)
    done = delivery.deliver(
        deps, closed.detail.capture_id, lambda: context.get_remaining_time_in_millis() / 1000
    )
    count("Reports", "Status", done.status)
    if done.problem:
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
    return done.to_dict()
