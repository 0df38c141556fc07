"""moto's server with what moto 5.2.5 lacks and the stack uses, installed before it serves.

- EKS: access entries and their access policies, add-ons, Pod Identity associations and the cluster's
  ``accessConfig`` (localcloud/eks_access.py).
- S3: GetBucketNotificationConfiguration answers the ``EventBridgeConfiguration`` that
  PutBucketNotificationConfiguration stored (moto keeps it, and sends events by it, but never returns it).
- DynamoDB: one request at a time. moto answers each request on its own thread and its backend reads an
  item, checks a condition and writes it without a lock, so two conditional writes of one item arriving
  together could both pass (two sweeps closing one capture); DynamoDB applies each write to an item
  atomically and refuses the second with ConditionalCheckFailedException. (moto's handling is Python
  under one GIL: serializing it costs little.)

``python -m localcloud.motoserver -H 127.0.0.1 -p PORT`` takes moto.server's arguments.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from moto import server
from moto.core.responses import ActionResult, EmptyResult
from moto.dynamodb.responses import DynamoHandler
from moto.s3.responses import S3Response

from localcloud import eks_access


def _rule(item: Any, arn_key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"Id": item.id, arn_key: item.arn, "Events": item.events}
    if item.filters:
        rule["Filter"] = {"Key": {"FilterRules": item.filters["S3Key"]["FilterRule"]}}
    return rule


def get_bucket_notification(self: S3Response) -> Any:
    """moto's answer, plus ``EventBridgeConfiguration`` when the bucket sends its events to EventBridge."""
    configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
    if not configuration:
        return self.serialized(EmptyResult())
    result: dict[str, Any] = {
        "TopicConfigurations": [_rule(t, "TopicArn") for t in configuration.topic],
        "QueueConfigurations": [_rule(q, "QueueArn") for q in configuration.queue],
        "LambdaFunctionConfigurations": [_rule(f, "LambdaFunctionArn") for f in configuration.cloud_function],
    }
    if configuration.event_bridge is not None:
        result["EventBridgeConfiguration"] = {}
    self.data["Action"] = "GetBucketNotificationConfiguration"
    return self.serialized(ActionResult(result))


def atomic_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time (see the module's docstring)."""
    one_at_a_time = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialized(self: DynamoHandler) -> Any:
        with one_at_a_time:
            return call_action(self)

    setattr(DynamoHandler, "call_action", serialized)  # noqa: B010


def main() -> None:
    eks_access.install()
    atomic_dynamodb()
    setattr(S3Response, "get_bucket_notification", get_bucket_notification)  # noqa: B010
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
