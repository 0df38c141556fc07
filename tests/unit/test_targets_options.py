"""Capture options: stack defaults, overridden by an alarm's eks-capture:* tags or a start request."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.captures.options import (
    CAPTURE_TAGS,
    CaptureOptions,
    alarm_cluster,
    capture_options_for_request,
    capture_options_from_tags,
)
from eks_capture.errors import CaptureRejected
from eks_capture.events.models import AlarmStateChange, StartCapture, parse_event
from eks_capture.settings import NodeFallback, Settings
from tests.events import load_event

DEFAULTS = CaptureOptions(duration_seconds=300, snaplen=262144, filter=None, fallback=NodeFallback.NONE)
MAX = 3600


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, {}),
        ({"team": "platform", "aws:cloudformation:stack-name": "x"}, {}),
        ({"eks-capture:duration": "600"}, {"duration_seconds": 600}),
        ({"eks-capture:duration": " 60 "}, {"duration_seconds": 60}),
        ({"eks-capture:snaplen": "128"}, {"snaplen": 128}),
        ({"eks-capture:filter": "udp port 53"}, {"filter": "udp port 53"}),
        ({"eks-capture:filter": "none"}, {"filter": None}),
        ({"eks-capture:fallback": "ALL"}, {"fallback": NodeFallback.ALL}),
        ({"eks-capture:cluster": "shop-prod"}, {"cluster": "shop-prod"}),
    ],
)
def test_capture_tags_override_only_what_they_name(tags: dict[str, str], expected: dict[str, Any]) -> None:
    options = capture_options_from_tags(tags, DEFAULTS, max_duration_seconds=MAX)
    for field in ("duration_seconds", "snaplen", "filter", "fallback", "cluster"):
        assert getattr(options, field) == expected.get(field, getattr(DEFAULTS, field)), field


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("eks-capture:duration", "ten minutes"),
        ("eks-capture:duration", "-5"),
        ("eks-capture:duration", "3601"),
        ("eks-capture:duration", "5"),
        ("eks-capture:snaplen", "0"),
        ("eks-capture:snaplen", "1e6"),
        ("eks-capture:filter", "port 53; reboot"),
        ("eks-capture:filter", "-i eth0"),
        ("eks-capture:fallback", "some"),
        ("eks-capture:cluster", "shop prod"),
        ("eks-capture:service", "ledger"),
        ("eks-capture:service-ports", "yes"),
        ("eks-capture:durration", "60"),
    ],
)
def test_bad_capture_tag_is_refused_naming_the_tag(tag: str, value: str) -> None:
    with pytest.raises(CaptureRejected) as raised:
        capture_options_from_tags({tag: value}, DEFAULTS, max_duration_seconds=MAX)
    assert raised.value.field == f"tags.{tag}"


def test_every_documented_tag_is_known() -> None:
    tags = {"eks-capture:duration": "60", "eks-capture:filter": "tcp", "eks-capture:snaplen": "96"}
    tags |= {"eks-capture:fallback": "all", "eks-capture:cluster": "c1"}
    tags |= {"eks-capture:service": "payments/ledger", "eks-capture:service-ports": "true"}
    assert set(tags) == set(CAPTURE_TAGS)
    capture_options_from_tags(tags, DEFAULTS, max_duration_seconds=MAX)


def test_sample_alarm_tags_give_its_documented_options() -> None:
    event = parse_event(load_event("alarm-single-metric-instance"))
    assert isinstance(event, AlarmStateChange)
    assert event.detail.alarm_tags is not None
    options = capture_options_from_tags(event.detail.alarm_tags, DEFAULTS, max_duration_seconds=MAX)
    assert options.duration_seconds == int(event.detail.alarm_tags["eks-capture:duration"])
    assert options.filter == event.detail.alarm_tags["eks-capture:filter"]
    assert options.cluster == "shop-prod"


def test_defaults_come_from_settings() -> None:
    settings = Settings(
        capture_bucket="bucket-1",
        capture_table="tab",
        capture_image="example.com/eks-capture@sha256:" + "0" * 64,
        default_duration_seconds=90,
        default_snaplen=96,
        node_fallback=NodeFallback.ALL,
        default_cluster="c1",
    )
    assert CaptureOptions.defaults(settings) == CaptureOptions(90, 96, None, NodeFallback.ALL)


@pytest.mark.parametrize(
    "sample", ["start-capture-nodes", "start-capture-pod-selector", "start-capture-label-selector"]
)
def test_start_request_options_override_defaults_field_by_field(sample: str) -> None:
    raw = load_event(sample)
    event = parse_event(raw)
    assert isinstance(event, StartCapture)
    options = capture_options_for_request(event.detail, DEFAULTS)
    detail = raw["detail"]
    assert options.duration_seconds == detail.get("duration_seconds", DEFAULTS.duration_seconds)
    assert options.snaplen == detail.get("snaplen", DEFAULTS.snaplen)
    assert options.filter == detail.get("filter", DEFAULTS.filter)
    assert options.cluster == detail["cluster"]


def alarm_with(dimensions: list[dict[str, str]]) -> AlarmStateChange:
    raw = load_event("alarm-metric-math")
    for query, dims in zip(raw["detail"]["configuration"]["metrics"][1:], dimensions, strict=True):
        query["metricStat"]["metric"]["dimensions"] = dims
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    return event


@pytest.mark.parametrize(
    ("dimensions", "tagged", "default", "cluster"),
    [
        ([{"ClusterName": "a"}, {"ClusterName": "a"}], None, None, "a"),
        ([{"ClusterName": "a"}, {"InstanceId": "i-12345678"}], None, "d", "a"),
        ([{"InstanceId": "i-12345678"}, {"InstanceId": "i-87654321"}], "b", "d", "b"),
        ([{"ClusterName": "a"}, {"ClusterName": "c"}], "b", None, "b"),
        ([{"InstanceId": "i-12345678"}, {}], None, "d", "d"),
    ],
)
def test_alarm_cluster_is_its_tag_else_its_cluster_dimension_else_the_default(
    dimensions: list[dict[str, str]], tagged: str | None, default: str | None, cluster: str
) -> None:
    assert alarm_cluster(alarm_with(dimensions), CaptureOptions(60, 96, cluster=tagged), default) == cluster


@pytest.mark.parametrize(
    ("dimensions", "field"),
    [
        ([{"ClusterName": "a"}, {"ClusterName": "b"}], "detail.configuration.metrics"),
        ([{"InstanceId": "i-12345678"}, {}], "tags.eks-capture:cluster"),
    ],
)
def test_alarm_whose_cluster_cannot_be_told_is_refused(dimensions: list[dict[str, str]], field: str) -> None:
    with pytest.raises(CaptureRejected) as raised:
        alarm_cluster(alarm_with(dimensions), CaptureOptions(60, 96), None)
    assert raised.value.field == field
