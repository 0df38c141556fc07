"""moto's server with what moto 5.2.5 lacks and the stack uses, installed before it serves.

- EKS: access entries and their access policies, add-ons, Pod Identity associations and the cluster's
  ``accessConfig`` (localcloud/eks_access.py).
- S3: GetBucketNotificationConfiguration answers the ``EventBridgeConfiguration`` that
  PutBucketNotificationConfiguration stored (moto keeps it, and sends events by it, but never returns it).

``python -m localcloud.motoserver -H 127.0.0.1 -p PORT`` takes moto.server's arguments.
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server
from moto.core.responses import ActionResult, EmptyResult
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


def main() -> None:
    eks_access.install()
    setattr(S3Response, "get_bucket_notification", get_bucket_notification)  # noqa: B010
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
