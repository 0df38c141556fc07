"""An alarm on each preset's metric, fired in the local cloud, captures with that preset; tags still win.

CloudWatch alarms in moto, the state-change event CloudWatch would send (localcloud.cloudwatch) handed
to the trigger (its tags read back from CloudWatch), capture Jobs in the emulated ``shop-prod``. The
route from EventBridge to the trigger's Lambda is exercised by tests/integration/test_presets_recipes.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.presets import PRESETS, Preset
from eks_capture.settings import Settings
from eks_capture.store.sessions import CaptureSession
from localcloud.aws import MotoServer
from localcloud.cloudwatch import set_alarm_state
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS, PODS
from localcloud.template import Stack
from tests.fixtures.sessions import stored_session
from tests.fixtures.stack import STACK_PARAMETERS, deploy_stack

# Presets are what this file checks, so its stack lifts the alarm caps (tests/integration/test_alarm_limits.py
# checks those): alarms may keep whole packets, capture an hour and ask for every node.
UNCAPPED = {"AlarmMaxSnaplen": "262144", "AlarmMaxDurationSeconds": "3600", "AlarmAllowFallbackAll": "true"}
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
INSTANCE_A = "i-0a1b2c3d4e5f60718"
NAMESPACE = "eks-capture"


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The test stack with the alarm caps lifted."""
    return deploy_stack({**STACK_PARAMETERS, **UNCAPPED}, monkeypatch)


def _dimensions(preset: Preset) -> dict[str, str]:
    """Dimensions naming NODE_A the way the preset's metric source names nodes (or pods on it)."""
    namespace = preset.metrics[0][0]
    if preset.pod_traffic:
        return {"ClusterName": "shop-prod", "Namespace": "payments", "PodName": "checkout"}
    if namespace == "ContainerInsights":
        return {"ClusterName": "shop-prod", "NodeName": NODE_A, "InstanceId": INSTANCE_A}
    if namespace.startswith("AWS/") and "ELB" in namespace:
        return {
            "TargetGroup": "targetgroup/api/0123456789abcdef",
            "LoadBalancer": "app/shop/0123456789abcdef",
        }
    return {"InstanceId": INSTANCE_A, "driver": "ena", "interface": "eth0"}


def _alarm(name: str, namespace: str, metric: str, dimensions: dict[str, str], tags: dict[str, str]) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )


def _fire(deps: Deps, name: str) -> CaptureSession:
    event = set_alarm_state(name, "ALARM", "Threshold Crossed: 1 datapoint [42.0] was greater than 0.0")
    outcome = trigger.handle(event, deps)
    assert outcome.status == "running", outcome.message
    session = stored_session(deps, outcome.capture_id)
    return session


def _capture_args(shop: KubeEmulator) -> dict[str, list[str]]:
    """Each Job's capture container arguments, by node."""
    return {
        job["spec"]["template"]["spec"]["nodeName"]: job["spec"]["template"]["spec"]["containers"][0]["args"]
        for job in shop.objects(JOBS, NAMESPACE)
    }


def _option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _checkout_hosts(shop: KubeEmulator) -> set[str]:
    return {
        f"host {pod['status']['podIP']}"
        for pod in shop.objects(PODS, "payments")
        if pod["metadata"]["labels"].get("app.kubernetes.io/name") == "checkout"
    }


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_an_alarm_on_the_preset_s_metric_captures_with_its_filter_and_snap_length(
    shop: KubeEmulator, deps: Deps, settings: Settings, preset: Preset
) -> None:
    namespace, metric = preset.metrics[0]
    name = f"{settings.alarm_name_prefix}{preset.name}"
    names_no_node = "TargetGroup" in _dimensions(preset)
    _alarm(
        name, namespace, metric, _dimensions(preset), {"eks-capture:fallback": "all"} if names_no_node else {}
    )

    session = _fire(deps, name)

    assert session.preset == preset.name
    assert preset.name in session.verdict
    jobs = _capture_args(shop)
    assert jobs, "no capture Job was created"
    for args in jobs.values():
        assert int(_option(args, "--snaplen") or 0) == (preset.snaplen or settings.default_snaplen)
        if preset.pod_traffic:
            assert set((_option(args, "--filter") or "").split(" or ")) == _checkout_hosts(shop)
        else:
            assert _option(args, "--filter") == preset.filter


def test_the_alarm_s_tags_override_the_preset(shop: KubeEmulator, deps: Deps, settings: Settings) -> None:
    [conntrack] = [p for p in PRESETS if p.name == "conntrack"]
    namespace, metric = conntrack.metrics[0]
    tags = {
        "eks-capture:filter": "tcp port 443",
        "eks-capture:snaplen": "2048",
        "eks-capture:duration": "120",
    }
    _alarm(f"{settings.alarm_name_prefix}conntrack-tagged", namespace, metric, _dimensions(conntrack), tags)

    session = _fire(deps, f"{settings.alarm_name_prefix}conntrack-tagged")

    [args] = _capture_args(shop).values()
    assert (_option(args, "--filter"), _option(args, "--snaplen"), _option(args, "--duration")) == (
        "tcp port 443",
        "2048",
        "120",
    )
    assert session.preset == conntrack.name


def test_the_target_port_tag_narrows_the_load_balancer_preset(
    shop: KubeEmulator, deps: Deps, settings: Settings
) -> None:
    [target] = [p for p in PRESETS if p.port_filter]
    namespace, metric = target.metrics[0]
    tags = {"eks-capture:fallback": "all", "eks-capture:port": "8443"}
    _alarm(f"{settings.alarm_name_prefix}target", namespace, metric, _dimensions(target), tags)

    _fire(deps, f"{settings.alarm_name_prefix}target")

    assert {_option(args, "--filter") for args in _capture_args(shop).values()} == {
        target.capture_filter(8443)
    }


def test_the_start_notification_names_the_chosen_preset(
    shop: KubeEmulator, deps: Deps, settings: Settings
) -> None:
    topic = boto3.client("sns").create_topic(Name="captures")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    notifying = replace(deps, settings=settings.model_copy(update={"notification_topic_arn": topic}))
    [conntrack] = [p for p in PRESETS if p.name == "conntrack"]
    namespace, metric = conntrack.metrics[0]
    _alarm(f"{settings.alarm_name_prefix}conntrack-told", namespace, metric, _dimensions(conntrack), {})

    session = _fire(notifying, f"{settings.alarm_name_prefix}conntrack-told")

    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])["Message"]
    assert session.capture_id in body
    assert f"preset {conntrack.name}" in body
