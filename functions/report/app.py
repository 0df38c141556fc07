"""Report: a "Capture Closed" event in, the capture's report stored and its end notification sent."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.errors import CaptureRejected
from eks_capture.events.closings import parse_capture_closed
from eks_capture.report import delivery
from eks_capture.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
deps = delivery.DeliveryDeps(settings=settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        closed = parse_capture_closed(event, expected_account=settings.expected_account)
    except CaptureRejected as error:
        logger.warning(f"event not reported: {error.message}", extra={"error": error.to_dict()})
        metrics.add_metric(name="ReportEventsRejected", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "error": error.to_dict()}
    done = delivery.deliver(
        deps, closed.detail.capture_id, lambda: context.get_remaining_time_in_millis() / 1000
    )
    metrics.add_metric(name=f"Reports_{done.status}", unit=MetricUnit.Count, value=1)
    if done.problem:
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
    return done.to_dict()
