"""Trigger: an alarm or a manual Start/Stop Capture event in, capture Jobs on the affected nodes out."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.captures import trigger
from eks_capture.captures.plan import Deps
from eks_capture.errors import CaptureError
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
deps = Deps(settings=settings, store=CaptureStore(settings.capture_table))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        outcome = trigger.handle(event, deps)
    except CaptureError as error:
        logger.warning(f"event not acted on: {error.message}", extra={"error": error.to_dict()})
        metrics.add_metric(name="TriggerErrors", unit=MetricUnit.Count, value=1)
        if error.retryable:
            raise
        return {"status": "error", "error": error.to_dict()}
    metrics.add_metric(name=f"Captures_{outcome.status}", unit=MetricUnit.Count, value=1)
    return outcome.to_dict()
