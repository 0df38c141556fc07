"""Every entry event as EventBridge (or S3) delivers it, as pydantic models; ``parse_event`` picks one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from eks_capture.errors import CaptureRejected, FieldProblem
from eks_capture.events.envelopes import EventBridgeEnvelope, ScheduledEvent
from eks_capture.events.fields import (
    ABSOLUTE_MAX_DURATION_SECONDS,
    BpfFilter,
    ClusterName,
    InstanceId,
    NodeName,
    Reason,
    RequestedBy,
    ServiceRef,
    Snaplen,
    check_duration,
)
from eks_capture.events.s3 import S3Notification, S3ObjectCreated, S3ObjectRef
from eks_capture.ids import parse_capture_id
from eks_capture.kube.selectors import LabelSelector, PodSelector

__all__ = [
    "AlarmStateChange",
    "Event",
    "EventBridgeEnvelope",
    "Metric",
    "S3Notification",
    "S3ObjectCreated",
    "S3ObjectRef",
    "ScheduledEvent",
    "StartCapture",
    "StartCaptureDetail",
    "StartRecorder",
    "StartRecorderDetail",
    "StopCapture",
    "StopCaptureDetail",
    "StopRecorder",
    "StopRecorderDetail",
    "parse_event",
]

CUSTOM_SOURCE = "eks-capture"
MAX_TARGETS = 1000
MAX_LOOKBACK_SECONDS = 4 * 3600
RECORDER_SNAPLEN = 128  # headers only: enough for every finding, little of any payload
MAX_RING_MINUTES = 240
MIN_RING_MEGABYTES, MAX_RING_MEGABYTES = 64, 65536
AlarmStateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


class _Aws(BaseModel):
    """AWS-shaped input: camelCase keys, unknown keys ignored (AWS adds fields over time)."""

    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class _Ours(BaseModel):
    """Our own event details: snake_case keys, unknown keys refused so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- CloudWatch alarm state change ---------------------------------------------------------------


# CloudWatch writes alarm times as 2026-11-25T10:02:13.584+0000: ISO 8601, not RFC 3339 "date-time".
AwsTimestamp = Annotated[
    datetime, WithJsonSchema({"type": "string", "description": "ISO 8601, e.g. 2026-11-25T10:02:13.584+0000"})
]


class AlarmState(_Aws):
    """An alarm state as the event carries it (``reasonData`` is a JSON string, kept as given)."""

    value: AlarmStateValue
    reason: str = ""
    reason_data: str | None = None
    timestamp: AwsTimestamp
    actions_suppressed_by: str | None = None


class Metric(_Aws):
    """A CloudWatch metric: namespace, name and dimensions (a plain object in these events)."""

    namespace: str
    name: str
    dimensions: dict[str, str] = Field(default_factory=dict)


class MetricStat(_Aws):
    """A metric with its period and statistic."""

    metric: Metric
    period: int | None = None
    stat: str | None = None
    unit: str | None = None


class MetricDataQuery(_Aws):
    """One entry of ``configuration.metrics``: a metric (``metricStat``) or a metric-math ``expression``."""

    id: str
    metric_stat: MetricStat | None = None
    expression: str | None = None
    label: str | None = None
    return_data: bool | None = None

    @model_validator(mode="after")
    def _stat_or_expression(self) -> Self:
        if (self.metric_stat is None) == (self.expression is None):
            raise ValueError("a metric query has exactly one of metricStat and expression")
        return self


class AlarmConfiguration(_Aws):
    """What the alarm watches: metrics (single or metric math) or, for a composite alarm, ``alarmRule``."""

    description: str | None = None
    metrics: tuple[MetricDataQuery, ...] = ()
    alarm_rule: str | None = None


class AlarmDetail(_Aws):
    """The ``detail`` of a CloudWatch Alarm State Change; ``alarmTags`` when tag propagation is on."""

    alarm_name: str = Field(min_length=1)
    state: AlarmState
    previous_state: AlarmState | None = None
    configuration: AlarmConfiguration = AlarmConfiguration()
    alarm_tags: dict[str, str] | None = None
    alarm_tags_status: str | None = None


class AlarmStateChange(EventBridgeEnvelope):
    """A CloudWatch alarm changed state (source ``aws.cloudwatch``)."""

    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmDetail

    @property
    def alarm_name(self) -> str:
        """The alarm's name."""
        return self.detail.alarm_name

    @property
    def is_alarm(self) -> bool:
        """Whether the alarm went into ALARM (the only state that starts a capture)."""
        return self.detail.state.value == "ALARM"

    @property
    def is_composite(self) -> bool:
        """Whether this is a composite alarm (an alarm rule over other alarms, no metrics)."""
        return self.detail.configuration.alarm_rule is not None

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """Every metric the alarm reads, across single-metric and metric-math configurations."""
        return tuple(q.metric_stat.metric for q in self.detail.configuration.metrics if q.metric_stat)


# --- manual start and stop -----------------------------------------------------------------------


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


class CaptureTargets(_Ours):
    """Where to capture: any mix of nodes, instance ids, a node selector, a pod selector and a Service
    (``namespace/name``: the nodes of its ready endpoints), or ``all``.

    A Service and a pod selector together capture both ends of a flow in one capture (the server's
    nodes and the client's); ``service_ports`` narrows the filter to the Service's ports.
    """

    nodes: Annotated[tuple[NodeName, ...], Field(max_length=MAX_TARGETS), AfterValidator(_unique)] = ()
    instance_ids: Annotated[
        tuple[InstanceId, ...], Field(max_length=MAX_TARGETS), AfterValidator(_unique)
    ] = ()
    node_selector: LabelSelector | None = None
    pod_selector: PodSelector | None = None
    service: ServiceRef | None = None
    service_ports: bool = False
    all: bool = False

    @model_validator(mode="after")
    def _some_target(self) -> Self:
        named = bool(
            self.nodes or self.instance_ids or self.node_selector or self.pod_selector or self.service
        )
        if self.all and named:
            raise ValueError("all: true captures on every node; do not combine it with other targets")
        if not self.all and not named:
            raise ValueError(
                "name at least one of nodes, instance_ids, node_selector, pod_selector, service, or all: true"
            )
        if self.service_ports and self.service is None:
            raise ValueError("service_ports narrows the filter to a service's ports: name the service")
        return self


class StartCaptureDetail(_Ours):
    """The ``detail`` of a manual Start Capture; omitted options take the stack's defaults."""

    cluster: ClusterName
    targets: CaptureTargets
    duration_seconds: int | None = None
    filter: BpfFilter | None = None
    snaplen: Snaplen | None = None
    lookback_seconds: Annotated[int, Field(ge=0, le=MAX_LOOKBACK_SECONDS)] | None = None
    reason: Reason
    requested_by: RequestedBy | None = None

    @field_validator("duration_seconds")
    @classmethod
    def _duration(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        context = info.context or {}
        return check_duration(value, int(context.get("max_duration_seconds", ABSOLUTE_MAX_DURATION_SECONDS)))


class StartCapture(EventBridgeEnvelope):
    """A manual request to capture (source ``eks-capture``, detail-type ``Start Capture``)."""

    source: Literal["eks-capture"]
    detail_type: Literal["Start Capture"] = Field(alias="detail-type")
    detail: StartCaptureDetail


class StopCaptureDetail(_Ours):
    """The ``detail`` of a manual Stop Capture."""

    capture_id: Annotated[str, AfterValidator(parse_capture_id)]
    reason: Reason | None = None
    requested_by: RequestedBy | None = None


class StopCapture(EventBridgeEnvelope):
    """A manual request to end a capture early (source ``eks-capture``, detail-type ``Stop Capture``)."""

    source: Literal["eks-capture"]
    detail_type: Literal["Stop Capture"] = Field(alias="detail-type")
    detail: StopCaptureDetail


# --- the flight recorder ---------------------------------------------------------------------------


class StartRecorderDetail(_Ours):
    """The ``detail`` of Start Recorder: keep the recent past on the selected nodes (all when none)."""

    cluster: ClusterName
    node_selector: LabelSelector | None = None
    filter: BpfFilter | None = None
    snaplen: Snaplen = RECORDER_SNAPLEN
    ring_minutes: Annotated[int, Field(ge=1, le=MAX_RING_MINUTES)] = 10
    budget_megabytes: Annotated[int, Field(ge=MIN_RING_MEGABYTES, le=MAX_RING_MEGABYTES)] = 1024
    reason: Reason
    requested_by: RequestedBy | None = None


class StartRecorder(EventBridgeEnvelope):
    """Turn the recorder on (or change it) in a cluster (source ``eks-capture``, ``Start Recorder``)."""

    source: Literal["eks-capture"]
    detail_type: Literal["Start Recorder"] = Field(alias="detail-type")
    detail: StartRecorderDetail


class StopRecorderDetail(_Ours):
    """The ``detail`` of Stop Recorder."""

    cluster: ClusterName
    reason: Reason | None = None
    requested_by: RequestedBy | None = None


class StopRecorder(EventBridgeEnvelope):
    """Turn the recorder off in a cluster (source ``eks-capture``, detail-type ``Stop Recorder``)."""

    source: Literal["eks-capture"]
    detail_type: Literal["Stop Recorder"] = Field(alias="detail-type")
    detail: StopRecorderDetail


_M = TypeVar("_M", bound=BaseModel)
Event = (
    AlarmStateChange
    | StartCapture
    | StopCapture
    | StartRecorder
    | StopRecorder
    | S3ObjectCreated
    | S3Notification
    | ScheduledEvent
)

EVENT_MODELS: Mapping[tuple[str, str], type[EventBridgeEnvelope]] = {
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): AlarmStateChange,
    (CUSTOM_SOURCE, "Start Capture"): StartCapture,
    (CUSTOM_SOURCE, "Stop Capture"): StopCapture,
    (CUSTOM_SOURCE, "Start Recorder"): StartRecorder,
    (CUSTOM_SOURCE, "Stop Recorder"): StopRecorder,
    ("aws.s3", "Object Created"): S3ObjectCreated,
    ("aws.events", "Scheduled Event"): ScheduledEvent,
}


def parse_event(
    raw: Mapping[str, Any],
    *,
    max_duration_seconds: int = ABSOLUTE_MAX_DURATION_SECONDS,
    expected_account: str | None = None,
) -> Event:
    """The typed event for ``raw``, or CaptureRejected naming the first bad field; never creates anything."""
    if not isinstance(raw, Mapping):
        raise CaptureRejected("event", "an event must be a JSON object")
    if "Records" in raw:
        return _validated(S3Notification, raw, {})
    key = (str(raw.get("source")), str(raw.get("detail-type")))
    model = EVENT_MODELS.get(key)
    if model is None:
        field = "source" if key[0] not in {source for source, _ in EVENT_MODELS} else "detail-type"
        known = ", ".join(f"{source}/{kind}" for source, kind in EVENT_MODELS)
        raise CaptureRejected(field, f"no handler for {key[0]}/{key[1]}; expected one of {known}")
    event = _validated(model, raw, {"max_duration_seconds": max_duration_seconds})
    if expected_account is not None and event.account != expected_account:
        raise CaptureRejected("account", f"event from account {event.account}, expected {expected_account}")
    return cast(Event, event)


def _validated(model: type[_M], raw: Mapping[str, Any], context: dict[str, Any]) -> _M:
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = [FieldProblem(_path(error["loc"]), _message(error)) for error in exc.errors()]
        raise CaptureRejected(problems[0].field, problems[0].message, problems) from None


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "event"


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    return "unknown field" if error["type"] == "extra_forbidden" else message


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """A JSON schema per entry event, for docs/schemas/ (what callers may send and what we read)."""
    schemas: dict[str, type[BaseModel]] = {
        "start-capture": StartCapture,
        "stop-capture": StopCapture,
        "start-recorder": StartRecorder,
        "stop-recorder": StopRecorder,
        "alarm-state-change": AlarmStateChange,
        "s3-object-created": S3ObjectCreated,
        "s3-notification": S3Notification,
        "scheduled-event": ScheduledEvent,
    }
    return {name: model.model_json_schema(by_alias=True) for name, model in schemas.items()}
