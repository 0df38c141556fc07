"""One immutable settings object, read from the environment and validated once at cold start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eks_capture.errors import SettingsInvalid
from eks_capture.events.fields import check_cluster_name
from eks_capture.kube.names import dns1123_label_error, dns1123_subdomain_error, quantity_bytes

#: The most API calls a function makes at once (fan-out threads); clients' connection pools hold as many.
MAX_API_PARALLELISM = 256

MIB = 2**20
TCPDUMP_MAX_SNAPLEN = 262144
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_ALARM_PREFIX = re.compile(r"^[^\x00-\x1f]{0,200}$")

Seconds = Annotated[int, Field(ge=1, le=7 * 24 * 3600)]


class NodeFallback(StrEnum):
    """What to capture on when an alarm names no node."""

    NONE = "none"
    ALL = "all"


class Settings(BaseModel):
    """The trigger's configuration; field ``x_y`` comes from environment variable ``X_Y``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    capture_bucket: str
    capture_table: str
    capture_namespace: str = "eks-capture"
    capture_image: str | None = None  # None until the first image is pushed: captures are refused
    capture_image_tags_allowed: bool = False
    capture_service_account: str = "eks-capture-uploader"
    alarm_name_prefix: str = "eks-capture-"
    default_cluster: str | None = None
    cluster_names: str | None = None
    expected_account: str | None = None
    aws_region: str | None = None
    default_duration_seconds: Annotated[int, Field(ge=10)] = 300
    max_duration_seconds: Annotated[int, Field(ge=10, le=24 * 3600)] = 3600
    max_nodes_per_capture: Annotated[int, Field(ge=1, le=1000)] = 10
    max_concurrent_captures: Annotated[int, Field(ge=1, le=1000)] = 5
    alarm_cooldown_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 900
    node_fallback: NodeFallback = NodeFallback.NONE
    alarm_max_snaplen: Annotated[int, Field(ge=64, le=TCPDUMP_MAX_SNAPLEN)] = 1536
    alarm_max_duration_seconds: Annotated[int, Field(ge=10, le=24 * 3600)] = 900
    alarm_allow_fallback_all: bool = False
    alarm_cluster_names: str | None = None
    upload_grace_seconds: Annotated[int, Field(ge=10, le=3600)] = 120
    job_ttl_seconds: Seconds = 3600
    spool_size_limit: str = "2Gi"
    default_snaplen: Annotated[int, Field(ge=64, le=TCPDUMP_MAX_SNAPLEN)] = TCPDUMP_MAX_SNAPLEN
    rotate_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    rotate_megabytes: Annotated[int, Field(ge=1, le=4096)] = 64
    recorder_rotate_seconds: Annotated[int, Field(ge=1, le=3600)] = 10  # the ring's grain in time
    api_parallelism: Annotated[int, Field(ge=1, le=MAX_API_PARALLELISM)] = 16
    notification_topic_arn: str | None = None
    lifecycle_bus_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._/-]{1,256}$")
    pending_bound_seconds: Annotated[int, Field(ge=30, le=24 * 3600)] = 300
    #: How long the sweep keeps a finished capture open for files its nodes' manifests list but the index
    #: does not hold yet, from the manifest's writing. An hour outlasts every attempt of an indexer that
    #: fails or times out: Lambda runs an async event 3 times (two retries, 1 and 2 minutes apart), each
    #: up to the indexer's 900 s timeout, 2,880 s in all. A longer backlog (throttling, which Lambda retries
    #: for up to 6 h, EventBridge for 24 h) is said in the verdict rather than holding it back that long.
    index_wait_seconds: Annotated[int, Field(ge=0, le=24 * 3600)] = 3600
    #: The first wait before a failed Kubernetes call is tried again (doubling, at most 25 of them): 200 ms,
    #: production's, at most; the functions' timeouts are sized for its worst case (eks.worst_call_seconds).
    kube_retry_backoff_ms: Annotated[int, Field(ge=1, le=200)] = 200
    #: The first wait before a DynamoDB transaction cancelled for throttling or a conflict is tried again
    #: (jittered, doubling, 8 attempts): 50 ms, production's, at most; the functions' timeouts are sized for
    #: its worst case (keys.worst_transaction_wait_seconds).
    store_retry_backoff_ms: Annotated[int, Field(ge=1, le=50)] = 50

    @field_validator("capture_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError("must be an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')")
        return value

    @field_validator("capture_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError("must be a DynamoDB table name (3-255 letters, digits, '_', '-' and '.')")
        return value

    @field_validator("capture_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if problem := dns1123_label_error(value):
            raise ValueError(problem)
        return value

    @field_validator("capture_service_account", "default_cluster")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and (problem := dns1123_subdomain_error(value.lower())):
            raise ValueError(problem)
        return value

    @field_validator("cluster_names", "alarm_cluster_names")
    @classmethod
    def _cluster_list(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [name.strip() for name in value.split(",")]
        for name in names:
            try:
                check_cluster_name(name)
            except ValueError as exc:
                raise ValueError(f"{name!r} {exc}") from None
        if len(set(names)) < len(names):
            raise ValueError("names a cluster twice")
        return ",".join(names)

    @field_validator("capture_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 512 or not _IMAGE.match(value)):
            raise ValueError("must be an image reference (registry/repository:tag or @sha256:digest)")
        return value

    @field_validator("alarm_name_prefix")
    @classmethod
    def _alarm_prefix(cls, value: str) -> str:
        if not _ALARM_PREFIX.match(value):
            raise ValueError("must be at most 200 printable characters")
        return value

    @field_validator("expected_account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT.match(value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("spool_size_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if quantity_bytes(value) < 64 * MIB:
            raise ValueError("must be at least 64Mi")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (
            self.capture_image
            and not self.capture_image_tags_allowed
            and not _DIGEST.search(self.capture_image)
        ):
            raise ValueError(
                "CAPTURE_IMAGE must be pinned by digest (registry/repository@sha256:<64 hex>); "
                "CAPTURE_IMAGE_TAGS_ALLOWED=true (the stack's AllowImageTags) accepts a tag"
            )
        if self.default_cluster and self.cluster_names and self.default_cluster not in self.clusters:
            raise ValueError("DEFAULT_CLUSTER must be one of CLUSTER_NAMES")
        if self.alarm_cluster_names and self.clusters and not set(self.alarm_clusters) <= set(self.clusters):
            raise ValueError("ALARM_CLUSTER_NAMES must name only clusters of CLUSTER_NAMES")
        if self.default_duration_seconds > self.max_duration_seconds:
            raise ValueError("DEFAULT_DURATION_SECONDS must not exceed MAX_DURATION_SECONDS")
        if self.spool_budget_bytes < 2 * self.rotate_megabytes * MIB:
            raise ValueError(
                "SPOOL_SIZE_LIMIT too small: 90 % of it, less the file being written, "
                "must hold two ROTATE_MEGABYTES files"
            )
        return self

    @property
    def kube_retry_backoff_seconds(self) -> float:
        """KUBE_RETRY_BACKOFF_MS in seconds, as the Kubernetes client's retry policy takes it."""
        return self.kube_retry_backoff_ms / 1000

    @property
    def store_retry_backoff_seconds(self) -> float:
        """STORE_RETRY_BACKOFF_MS in seconds, as the store's transaction retries take it."""
        return self.store_retry_backoff_ms / 1000

    @property
    def spool_size_bytes(self) -> int:
        """The spool emptyDir's sizeLimit in bytes."""
        return quantity_bytes(self.spool_size_limit)

    @property
    def spool_budget_bytes(self) -> int:
        """The uploader's byte budget: 90 % of the spool less the file being written (no eviction)."""
        return self.spool_size_bytes * 9 // 10 - self.rotate_megabytes * MIB

    def watches_alarm(self, alarm_name: str) -> bool:
        """Whether this stack acts on the alarm, by its name prefix."""
        return alarm_name.startswith(self.alarm_name_prefix)

    @property
    def clusters(self) -> tuple[str, ...]:
        """The clusters this stack captures on and the reaper sweeps: CLUSTER_NAMES, else DEFAULT_CLUSTER."""
        if self.cluster_names:
            return tuple(self.cluster_names.split(","))
        return (self.default_cluster,) if self.default_cluster else ()

    @property
    def alarm_clusters(self) -> tuple[str, ...]:
        """The clusters alarms may capture on: ALARM_CLUSTER_NAMES, else every cluster of the stack."""
        if self.alarm_cluster_names:
            return tuple(self.alarm_cluster_names.split(","))
        return self.clusters

    def serves(self, cluster: str) -> bool:
        """Whether a capture may run on ``cluster``: one of the stack's clusters (any when none is set)."""
        return not self.clusters or cluster in self.clusters

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); SettingsInvalid names the bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(name.upper())
            if raw is not None and raw.strip() != "":
                values[name] = raw.strip()
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            variable = str(error["loc"][0]).upper() if error["loc"] else _variable_in(str(error["msg"]))
            raise SettingsInvalid(variable, _message(error["msg"])) from None


def _variable_in(message: str) -> str:
    """The variable a cross-field message starts with (``DEFAULT_DURATION_SECONDS must ...``)."""
    for word in message.replace(",", " ").split():
        if word.isupper() and "_" in word:
            return word
    return "SETTINGS"


def _message(message: str) -> str:
    """Pydantic's message without its ``Value error, `` prefix."""
    return message.removeprefix("Value error, ")
