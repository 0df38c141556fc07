"""Trigger: an alarm or a manual Start/Stop Capture event in, capture Jobs on the affected nodes out."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.handlers import count, maps_errors
from eks_capture.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
deps = Deps.for_settings(settings)  # the index's DynamoDB client; the others at first use (AWS_CLIENTS)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@maps_errors(logger, "event not acted on")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = trigger.handle(event, deps)
    count("Captures", "Status", outcome.status)
    return outcome.to_dict()
