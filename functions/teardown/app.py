"""Teardown: on schedule, reap capture Jobs past their time box and close the sessions that ended."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.captures import reaper
from eks_capture.captures.deps import Deps
from eks_capture.events.models import ScheduledEvent, parse_event
from eks_capture.handlers import count, maps_errors
from eks_capture.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
deps = Deps.for_settings(settings, uses=("s3", "sns", "events"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@maps_errors(logger, "sweep not run")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not isinstance(parse_event(event), ScheduledEvent):
        logger.warning("the teardown runs on its schedule only; event ignored")
        return {"status": "ignored"}
    reports = reaper.sweep(deps, settings.clusters)
    for report in reports:
        for reason, jobs in report.deleted.items():
            count("JobsReaped", "Reason", reason, jobs)
        for status in report.closed.values():
            count("CapturesClosed", "Status", status)
        if report.errors:
            metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=len(report.errors))
    return {"sweeps": [r.to_dict() for r in reports]}
