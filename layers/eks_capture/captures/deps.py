"""What a function talks to: its settings, the capture index, the clusters, AWS, and its clock.

One bundle for the trigger, the reaper and the report delivery, built once per container by the handler;
tests give their own clock, cluster factory or clients. The AWS clients are typed (boto3-stubs) and each is
made on its first use, so a function pays only for the clients it calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from eks_capture.settings import MAX_API_PARALLELISM, Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.keys import DYNAMODB_CONFIG

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

    from eks_capture.kube.calls import Cluster

#: SigV4 for S3: presigned links then carry their expiry (X-Amz-Expires, at most 7 days; SigV2's do not). As
#: many connections as the sweep's threads read manifests with (API_PARALLELISM; botocore keeps 10).
S3_CONFIG = Config(signature_version="s3v4", max_pool_connections=MAX_API_PARALLELISM)


class AwsClients:
    """The AWS clients of one function; a client given here (a test's) is used as it is."""

    NAMES = frozenset({"s3", "dynamodb", "cloudwatch", "events", "sns", "ec2"})

    def __init__(self, **given: Any) -> None:
        unknown = set(given) - self.NAMES
        if unknown:
            raise TypeError(f"no AWS client named {', '.join(sorted(unknown))}")
        self.__dict__.update(given)  # cached_property finds them before it would make its own

    @cached_property
    def s3(self) -> S3Client:
        return boto3.client("s3", config=S3_CONFIG)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return boto3.client("cloudwatch")

    @cached_property
    def events(self) -> EventBridgeClient:
        return boto3.client("events")

    @cached_property
    def sns(self) -> SNSClient:
        return boto3.client("sns")

    @cached_property
    def ec2(self) -> EC2Client:
        return boto3.client("ec2")


def connect(cluster: str, settings: Settings | None = None) -> Cluster:
    """The cluster's API client, retrying at the settings' backoff (none given: production's); the
    Kubernetes client loads here, so the report function (which calls no cluster and has no Kubernetes
    layer) can import this module."""
    from eks_capture.kube.calls import Cluster

    if settings is None:
        return Cluster(cluster)
    return Cluster(cluster, backoff=settings.kube_retry_backoff_seconds)


def utc_now() -> datetime:
    """The clock of a function: aware UTC."""
    return datetime.now(UTC)


@dataclass
class Deps:
    """What a function talks to, and its clock."""

    settings: Settings
    store: CaptureStore
    aws: AwsClients = field(default_factory=AwsClients)
    cluster: Callable[[str], Cluster] = connect
    now: Callable[[], datetime] = utc_now

    @classmethod
    def for_settings(
        cls, settings: Settings, aws: AwsClients | None = None, uses: Iterable[str] = ()
    ) -> Deps:
        """A function's bundle: the index is the settings' table, spoken to through ``aws.dynamodb`` and
        retried at the settings' backoff.

        The clients it ``uses`` are made now, at cold start, not in its first invocations' time (a
        client takes tens of milliseconds to make); SNS only when the stack notifies, EventBridge only
        when it has a lifecycle bus. A function whose starts are mostly cold (the trigger) names none:
        there, a client an event does not need is time lost before the work starts.
        """
        clients = aws or AwsClients()
        store = CaptureStore(settings.capture_table, clients.dynamodb, settings.store_retry_backoff_seconds)
        skipped = {"sns": not settings.notification_topic_arn, "events": not settings.lifecycle_bus_name}
        for name in uses:
            if not skipped.get(name, False):
                getattr(clients, name)
        return cls(settings=settings, store=store, aws=clients, cluster=partial(connect, settings=settings))

    @property
    def sns(self) -> SNSClient | None:
        """The SNS client when the stack notifies (a topic is set); None otherwise, and no client is made."""
        return self.aws.sns if self.settings.notification_topic_arn else None
