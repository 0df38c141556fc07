"""Indexer: an S3 "Object Created" event in, the pcap's analysis and index item in DynamoDB out."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from eks_capture.captures import indexer
from eks_capture.handlers import maps_errors
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_env()
store = CaptureStore(settings.capture_table, backoff=settings.store_retry_backoff_seconds)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@maps_errors(logger, "event not indexed")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = indexer.handle(event, store)
    indexed = [o for o in outcomes if o.status == "indexed"]
    metrics.add_metric(name="FilesIndexed", unit=MetricUnit.Count, value=len(indexed))
    replaced = sum(o.status == "replaced" for o in outcomes)  # a later version of a key indexed before
    metrics.add_metric(name="FilesReplaced", unit=MetricUnit.Count, value=replaced)
    metrics.add_metric(name="PacketsIndexed", unit=MetricUnit.Count, value=sum(o.packets for o in indexed))
    return {"files": [o.to_dict() for o in outcomes]}
