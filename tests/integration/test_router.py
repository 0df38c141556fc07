"""The template router delivers exactly what AWS would: matching events to their handler, nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from localcloud.aws import REGION, MotoServer
from localcloud.cloudwatch import set_alarm_state
from localcloud.router import Router, function_specs
from localcloud.template import Stack, TemplateError, load_template

ECHO_STACK = Path(__file__).parent / "echo_stack"
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64


@pytest.fixture
def echo_router(aws: MotoServer) -> Iterator[Router]:
    stack = Stack(load_template(ECHO_STACK / "template.yaml"), "echo", base_dir=ECHO_STACK)
    router = Router(stack, environment=aws.env())
    router.deploy()
    yield router
    router.stop()


def _put(source: str, detail_type: str, detail: dict[str, object], bus: str = "default") -> None:
    entries = [
        {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": bus}
    ]
    assert boto3.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0  # type: ignore[arg-type]


def _metric_alarm(name: str) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Statistic="Average",
        Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
        Period=60,
        EvaluationPeriods=1,
        Threshold=90,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_alarm_matching_the_template_pattern_reaches_its_handler_with_template_environment(
    echo_router: Router,
) -> None:
    _metric_alarm("team-latency")
    set_alarm_state("team-latency", "ALARM", "threshold crossed")

    [invocation] = echo_router.drain()

    assert invocation.function == "EchoFunction"
    assert invocation.error is None
    assert invocation.result["detail"]["alarmName"] == "team-latency"
    assert invocation.result["account"] == "123456789012"
    assert invocation.result["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"][
        "dimensions"
    ] == {"InstanceId": "i-0123456789abcdef0"}
    assert invocation.result["from_globals"] == f"{REGION}-team-"
    assert invocation.result["own"] == "own-value"
    assert invocation.result["function_name"] == "EchoFunction"
    assert 0 < invocation.result["remaining_ms"] <= 5000


@pytest.mark.parametrize(
    ("alarm", "state"),
    [
        pytest.param("other-latency", "ALARM", id="name-outside-the-prefix"),
        pytest.param("team-latency", "OK", id="state-not-in-the-pattern"),
    ],
)
def test_alarm_outside_the_pattern_reaches_nothing(echo_router: Router, alarm: str, state: str) -> None:
    _metric_alarm(alarm)
    set_alarm_state(alarm, "ALARM" if state == "OK" else "OK", "set up")
    echo_router.drain()
    echo_router.invocations.clear()

    set_alarm_state(alarm, state, "changed")

    assert echo_router.drain() == []


def test_rule_on_a_custom_bus_ignores_the_same_event_on_the_default_bus(echo_router: Router) -> None:
    _put("echo", "Ping", {"n": 1}, bus="default")
    assert echo_router.drain() == []

    _put("echo", "Ping", {"n": 2}, bus="echo-bus")
    [invocation] = echo_router.drain()
    assert invocation.result["detail"] == {"n": 2}


def test_schedule_delivers_a_scheduled_event(echo_router: Router) -> None:
    echo_router.fire_schedule("EchoFunction")

    [invocation] = echo_router.drain()

    assert invocation.result["detail_type"] == "Scheduled Event"


def test_failing_handler_is_retried_twice_like_async_lambda(echo_router: Router) -> None:
    _put("echo", "Ping", {"fail": True}, bus="echo-bus")

    [invocation] = echo_router.drain()

    assert invocation.attempts == 3
    assert invocation.error is not None
    assert invocation.error["errorMessage"] == "asked to fail"


def test_a_function_without_retries_is_invoked_once_however_it_fails(aws: MotoServer) -> None:
    stack = Stack(load_template(ECHO_STACK / "template.yaml"), "echo", {"Retries": "0"}, base_dir=ECHO_STACK)
    router = Router(stack, environment=aws.env())
    router.deploy()
    try:
        _put("echo", "Ping", {"fail": True}, bus="echo-bus")
        [invocation] = router.drain()
    finally:
        router.stop()

    assert invocation.attempts == 1
    assert invocation.error is not None


@pytest.mark.parametrize(
    ("init_sleep", "init_limit", "handler_sleep", "error_type"),
    [
        (1.5, 10.0, 0.0, None),  # Init longer than the 1 s timeout: not counted, as in Lambda
        (2.0, 0.5, 0.0, "Sandbox.Timedout"),  # Init past its limit runs within the timeout: counted
        (0.0, 10.0, 1.5, "Sandbox.Timedout"),  # the handler itself past the timeout
    ],
)
def test_the_timeout_counts_the_handler_and_an_init_past_its_limit_but_not_a_cold_start(
    aws: MotoServer, init_sleep: float, init_limit: float, handler_sleep: float, error_type: str | None
) -> None:
    template = load_template(ECHO_STACK / "template.yaml")
    template["Globals"]["Function"]["Timeout"] = 1
    stack = Stack(template, "echo", {"Retries": "0"}, base_dir=ECHO_STACK)
    environment = {**aws.env(), "INIT_SLEEP_SECONDS": str(init_sleep)}
    router = Router(stack, environment=environment, init_seconds=init_limit)
    router.deploy()
    try:
        invocation = router.invoke(
            "EchoFunction", {"detail-type": "Ping", "detail": {"sleep": handler_sleep}}
        )
    finally:
        router.stop()

    assert (invocation.error or {}).get("errorType") == error_type
    if error_type is None:
        assert invocation.result["remaining_ms"] > 500  # the handler's clock started after Init


def test_the_teardown_sweep_is_not_retried_and_the_other_functions_are_twice() -> None:
    stack = Stack(load_template(), "eks-capture", {"ClusterNames": "shop-prod", "CaptureImageUri": IMAGE})

    attempts = {logical_id: spec.attempts for logical_id, spec in function_specs(stack).items()}

    assert attempts == {
        "TriggerFunction": 3,
        "TeardownFunction": 1,
        "IndexerFunction": 3,
        "ReportFunction": 3,
    }


def test_unchanged_alarm_state_emits_no_event(echo_router: Router) -> None:
    _metric_alarm("team-flat")
    set_alarm_state("team-flat", "ALARM", "first")
    echo_router.drain()

    set_alarm_state("team-flat", "ALARM", "still")

    assert echo_router.drain() == []


def test_template_with_a_missing_handler_fails_to_deploy(aws: MotoServer, tmp_path: Path) -> None:
    template = load_template(ECHO_STACK / "template.yaml")
    template["Resources"]["EchoFunction"]["Properties"]["CodeUri"] = "functions/missing/"

    with pytest.raises(TemplateError, match=r"handler app\.lambda_handler not found"):
        Router(Stack(template, "broken", base_dir=ECHO_STACK), environment=aws.env())
