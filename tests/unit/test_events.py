"""Entry events: every sample parses to its model; anything else is refused naming the bad field."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

import pytest

from eks_capture.errors import CaptureRejected
from eks_capture.events.models import (
    AlarmStateChange,
    S3Notification,
    S3ObjectCreated,
    ScheduledEvent,
    StartCapture,
    StartRecorder,
    StopCapture,
    StopRecorder,
    parse_event,
)
from tests.events import event_names, load_event

KIND_BY_PREFIX: dict[str, type[Any]] = {
    "alarm-": AlarmStateChange,
    "start-capture-": StartCapture,
    "stop-capture": StopCapture,
    "start-recorder": StartRecorder,
    "stop-recorder": StopRecorder,
    "s3-object-created-eventbridge": S3ObjectCreated,
    "s3-object-created-notification": S3Notification,
    "schedule": ScheduledEvent,
}


def rejection(raw: dict[str, Any], **limits: Any) -> CaptureRejected:
    with pytest.raises(CaptureRejected) as raised:
        parse_event(raw, **limits)
    return raised.value


def test_every_sample_event_has_a_kind() -> None:
    for name in event_names():
        assert any(name.startswith(prefix) for prefix in KIND_BY_PREFIX), name


@pytest.mark.parametrize("name", event_names())
def test_sample_event_parses_to_the_model_of_its_kind(name: str) -> None:
    expected = next(kind for prefix, kind in KIND_BY_PREFIX.items() if name.startswith(prefix))
    assert isinstance(parse_event(load_event(name)), expected)


@pytest.mark.parametrize("name", event_names())
def test_parsing_leaves_the_raw_event_untouched(name: str) -> None:
    raw = load_event(name)
    parse_event(raw)
    assert raw == load_event(name)


INVALID_SAMPLES = [
    ("invalid/start-capture-filter-semicolon", "detail.filter"),
    ("invalid/start-capture-duration-too-long", "detail.duration_seconds"),
    ("invalid/start-capture-unknown-field", "detail.durations"),
    ("invalid/start-capture-missing-cluster", "detail.cluster"),
    ("invalid/start-capture-no-targets", "detail.targets"),
    ("invalid/start-capture-bad-node-name", "detail.targets.nodes.0"),
    ("invalid/start-capture-bad-instance-id", "detail.targets.instance_ids.0"),
    ("invalid/start-capture-all-and-nodes", "detail.targets"),
    ("invalid/stop-capture-bad-id", "detail.capture_id"),
    ("invalid/unknown-detail-type", "detail-type"),
]


@pytest.mark.parametrize(("name", "field"), INVALID_SAMPLES)
def test_invalid_sample_is_rejected_naming_the_bad_field(name: str, field: str) -> None:
    error = rejection(load_event(name), max_duration_seconds=3600)
    assert error.field == field
    assert error.to_dict()["field"] == field
    assert error.to_dict()["error"] == "CaptureRejected"


def test_every_invalid_sample_is_covered_by_the_table() -> None:
    assert set(event_names(folder="invalid")) == {name for name, _ in INVALID_SAMPLES}


def test_rejection_lists_every_problem_not_only_the_first() -> None:
    raw = load_event("start-capture-nodes")
    raw["detail"].update(filter="a;b", snaplen=1, cluster="")
    problems = {p["field"] for p in rejection(raw).to_dict()["problems"]}
    assert problems == {"detail.filter", "detail.snaplen", "detail.cluster"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}, "source"),
        ({"source": "eks-capture", "detail-type": "Pause Capture"}, "detail-type"),
        ({}, "source"),
    ],
)
def test_events_nobody_handles_are_refused(raw: dict[str, Any], field: str) -> None:
    assert rejection(raw).field == field


def test_a_non_object_event_is_refused() -> None:
    assert rejection(["not", "an", "object"]).field == "event"  # type: ignore[arg-type]


def test_event_from_another_account_is_refused_when_the_account_is_pinned() -> None:
    raw = load_event("start-capture-nodes")
    assert isinstance(parse_event(raw, expected_account=raw["account"]), StartCapture)
    assert rejection(raw, expected_account="210987654321").field == "account"


@pytest.mark.parametrize(
    ("duration", "cap", "accepted"), [(3600, 3600, True), (3601, 3600, False), (600, 300, False)]
)
def test_duration_is_capped_by_the_settings(duration: int, cap: int, accepted: bool) -> None:
    raw = load_event("start-capture-nodes")
    raw["detail"]["duration_seconds"] = duration
    if accepted:
        event = parse_event(raw, max_duration_seconds=cap)
        assert isinstance(event, StartCapture)
        assert event.detail.duration_seconds == duration
    else:
        assert rejection(raw, max_duration_seconds=cap).field == "detail.duration_seconds"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("snaplen",), 10),
        (("snaplen",), 300000),
        (("duration_seconds",), 5),
        (("reason",), "   "),
        (("reason",), "two\nlines"),
        (("reason",), "x" * 257),
        (("cluster",), "-leading-dash"),
        (("requested_by",), ""),
        (("targets", "nodes"), ["ip-10-0-0-1", "Upper.case"]),
        (("targets", "instance_ids"), ["i-0123456789"]),
        (("targets", "instance_ids"), ["i-0A1B2C3D4E5F60718"]),
        (("targets", "node_selector"), {}),
        (("targets", "node_selector"), {"matchLabels": {"bad key!": "x"}}),
        (("targets", "node_selector"), {"matchLabels": {"zone": "has space"}}),
        (("targets", "node_selector"), {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
        (
            ("targets", "node_selector"),
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        ),
        (
            ("targets", "node_selector"),
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        ),
        (("targets", "pod_selector"), {"matchLabels": {"app": "api"}}),
        (("targets", "pod_selector"), {"namespace": "Payments", "matchLabels": {"app": "api"}}),
    ],
)
def test_start_capture_field_breaking_kubernetes_or_capture_rules_is_refused(
    path: tuple[str, ...], value: Any
) -> None:
    raw = load_event("start-capture-nodes")
    target = raw["detail"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    field = rejection(raw).field
    assert field.startswith("detail." + ".".join(path)), field


def test_repeated_targets_are_kept_once() -> None:
    raw = load_event("start-capture-nodes")
    nodes = raw["detail"]["targets"]["nodes"]
    raw["detail"]["targets"]["nodes"] = nodes + nodes[:1]
    event = parse_event(raw)
    assert isinstance(event, StartCapture)
    assert event.detail.targets.nodes == tuple(nodes)


@pytest.mark.parametrize("name", event_names("alarm-"))
def test_alarm_name_is_the_one_in_the_alarm_arn(name: str) -> None:
    event = parse_event(load_event(name))
    assert isinstance(event, AlarmStateChange)
    assert event.resources[0].endswith(f":alarm:{event.alarm_name}")


@pytest.mark.parametrize("name", event_names("alarm-"))
def test_only_the_alarm_state_starts_a_capture(name: str) -> None:
    raw = load_event(name)
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    assert event.is_alarm is (raw["detail"]["state"]["value"] == "ALARM")


@pytest.mark.parametrize("name", event_names("alarm-"))
def test_alarm_metrics_are_every_metric_stat_of_its_configuration(name: str) -> None:
    raw = load_event(name)
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    stats = [
        q["metricStat"]["metric"]
        for q in raw["detail"]["configuration"].get("metrics", [])
        if "metricStat" in q
    ]
    assert [(m.namespace, m.name, m.dimensions) for m in event.metrics] == [
        (s["namespace"], s["name"], s["dimensions"]) for s in stats
    ]
    assert event.is_composite is ("alarmRule" in raw["detail"]["configuration"])


def test_composite_alarm_has_a_rule_and_no_metrics() -> None:
    event = parse_event(load_event("alarm-composite"))
    assert isinstance(event, AlarmStateChange)
    assert event.is_composite
    assert event.metrics == ()


def test_alarm_tags_propagated_in_the_event_are_read() -> None:
    raw = load_event("alarm-single-metric-instance")
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    assert event.detail.alarm_tags == raw["detail"]["alarmTags"]
    assert event.detail.alarm_tags_status == "SUCCESS"


def test_fields_aws_adds_later_do_not_break_alarm_parsing() -> None:
    raw = load_event("alarm-metric-math")
    raw["detail"]["newField"] = {"x": 1}
    raw["detail"]["configuration"]["metrics"][1]["metricStat"]["accountId"] = "123456789012"
    raw["brandNewEnvelopeField"] = True
    assert isinstance(parse_event(raw), AlarmStateChange)


def test_metric_query_with_both_a_metric_and_an_expression_is_refused() -> None:
    raw = load_event("alarm-metric-math")
    raw["detail"]["configuration"]["metrics"][1]["expression"] = "m1 * 2"
    assert rejection(raw).field == "detail.configuration.metrics.1"


def test_alarm_with_an_unknown_state_is_refused() -> None:
    raw = load_event("alarm-ok")
    raw["detail"]["state"]["value"] = "BROKEN"
    assert rejection(raw).field == "detail.state.value"


def test_classic_notification_keys_are_url_decoded() -> None:
    raw = load_event("s3-object-created-notification")
    key = "captures/shop prod/cap-20261125T110000Z-9f3c2a1b/node:a/file+1.pcap.zst"
    raw["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    event = parse_event(raw)
    assert isinstance(event, S3Notification)
    assert event.objects()[0].key == key


def test_eventbridge_keys_are_taken_as_written() -> None:
    raw = load_event("s3-object-created-eventbridge")
    raw["detail"]["object"]["key"] = "captures/a+b/%41.pcap"
    event = parse_event(raw)
    assert isinstance(event, S3ObjectCreated)
    assert event.objects()[0].key == "captures/a+b/%41.pcap"


def test_both_s3_forms_describe_the_created_object_alike() -> None:
    bridge_raw = load_event("s3-object-created-eventbridge")
    note_raw = load_event("s3-object-created-notification")
    bridge, note = parse_event(bridge_raw), parse_event(note_raw)
    assert isinstance(bridge, S3ObjectCreated)
    assert isinstance(note, S3Notification)
    (from_bridge,), (from_note,) = bridge.objects(), note.objects()
    assert from_bridge.bucket == from_note.bucket == bridge_raw["detail"]["bucket"]["name"]
    assert from_note.etag == note_raw["Records"][0]["s3"]["object"]["eTag"]
    assert from_bridge.size == bridge_raw["detail"]["object"]["size"]


@pytest.mark.parametrize("event_name", ["ObjectRemoved:Delete", "ObjectRestore:Completed"])
def test_notifications_other_than_object_created_are_refused(event_name: str) -> None:
    raw = load_event("s3-object-created-notification")
    raw["Records"][0]["eventName"] = event_name
    assert rejection(raw).field == "Records.0.eventName"


def test_stop_capture_names_the_capture() -> None:
    raw = load_event("stop-capture")
    event = parse_event(raw)
    assert isinstance(event, StopCapture)
    assert event.detail.capture_id == raw["detail"]["capture_id"]
