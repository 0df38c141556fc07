"""The template's alarm recipes: off by default; when on, each one fired for an instance captures its node.

The alarms are created in moto from template.yaml's own resolved properties (as CloudFormation would
create them), fired with an InstanceId dimension through localcloud.cloudwatch, and routed by the
template's rules to the trigger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from eks_capture.captures.presets import preset_for_metrics
from eks_capture.events.models import Metric
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import MotoServer
from localcloud.cloudwatch import set_alarm_state
from localcloud.kube import KubeEmulator
from localcloud.kube.registry import DeleteOptions
from localcloud.kube.resources import JOBS, PODS
from localcloud.router import Router
from localcloud.template import PROJECT_ROOT, Stack, load_template
from tests.fixtures.cluster import SHOP, start_cluster
from tests.fixtures.kube import serving
from tests.fixtures.stack import LOCAL_LAMBDA_ENV, STACK_PARAMETERS, deploy_stack

NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
INSTANCE_A = "i-0a1b2c3d4e5f60718"
AGENT_CONFIG = PROJECT_ROOT / "deploy" / "cloudwatch-agent.json"


def _recipes(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The recipe alarms the template creates with ``parameters``, properties resolved."""
    stack = Stack(load_template(), "test", {**STACK_PARAMETERS, **parameters})
    return {
        logical_id: stack.resolve(resource["Properties"])
        for logical_id, resource in stack.resources_of_type("AWS::CloudWatch::Alarm").items()
        if stack.condition(resource["Condition"])
    }


def _watched(properties: dict[str, Any]) -> Metric:
    [query] = [q for q in properties["Metrics"] if "MetricStat" in q]
    metric = query["MetricStat"]["Metric"]
    return Metric(
        namespace=metric["Namespace"],
        name=metric["MetricName"],
        dimensions={d["Name"]: d["Value"] for d in metric["Dimensions"]},
    )


def test_the_recipes_are_off_by_default() -> None:
    assert _recipes({}) == {}


def test_the_recipes_alarm_on_every_ena_allowance_counter_the_agent_publishes() -> None:
    config = json.loads(AGENT_CONFIG.read_text())
    ethtool = config["metrics"]["metrics_collected"]["ethtool"]
    published = {f"ethtool_{counter}" for counter in ethtool["metrics_include"]}

    watched = [_watched(p) for p in _recipes({"AlarmRecipeInstanceId": INSTANCE_A}).values()]

    assert {m.name for m in watched} == published
    assert {m.namespace for m in watched} == {config["metrics"].get("namespace", "CWAgent")}
    assert ["InstanceId"] in config["metrics"]["aggregation_dimensions"]
    assert all(m.dimensions == {"InstanceId": INSTANCE_A} for m in watched)
    assert all(preset_for_metrics([m]) is not None for m in watched)


@dataclass(frozen=True)
class Deployed:
    """The stack deployed, ``shop-prod`` set up for it, its wiring live (as the ``router`` fixture)."""

    shop: KubeEmulator
    router: Router
    settings: Settings


@pytest.fixture(scope="module")
def deployed(moto: MotoServer) -> Iterator[Deployed]:
    """One deployment for every recipe case: standing it up (and the functions' cold starts) was most of
    each case's time; ``recipe_world`` empties what a case leaves before the next."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        moto.reset()
        for name, value in moto.env().items():
            monkeypatch.setenv(name, value)
        stack = deploy_stack(dict(STACK_PARAMETERS), monkeypatch)
        for shop in serving(start_cluster(moto, stack, SHOP), monkeypatch):
            router = Router(stack, environment={**os.environ, **moto.env(), **LOCAL_LAMBDA_ENV})
            router.deploy(create_resources=False)
            try:
                yield Deployed(shop, router, Settings.from_env())
            finally:
                router.stop()


@pytest.fixture
def recipe_world(deployed: Deployed) -> Iterator[Deployed]:
    """The shared deployment as a fresh one starts: no capture Job or pod, an empty capture table (no
    session, node lock or cooldown of an earlier case), no alarm."""
    yield deployed
    shop, namespace = deployed.shop, deployed.settings.capture_namespace
    for job in shop.objects(JOBS, namespace):
        shop.registry.delete(
            JOBS, namespace, job["metadata"]["name"], DeleteOptions(propagation_policy="Background")
        )
    shop.wait_for(
        lambda: shop.objects(JOBS, namespace) == [] and shop.objects(PODS, namespace) == [],
        timeout=30,
        what="capture jobs and pods deleted",
    )
    table = boto3.resource("dynamodb").Table(deployed.settings.capture_table)
    keys = [key["AttributeName"] for key in table.key_schema]
    with table.batch_writer() as batch:
        for item in table.scan()["Items"]:
            batch.delete_item(Key={key: item[key] for key in keys})
    cloudwatch = boto3.client("cloudwatch")
    names = [alarm["AlarmName"] for alarm in cloudwatch.describe_alarms()["MetricAlarms"]]
    if names:
        cloudwatch.delete_alarms(AlarmNames=names)


@pytest.mark.parametrize("logical_id", sorted(_recipes({"AlarmRecipeInstanceId": INSTANCE_A})))
def test_a_recipe_alarm_fired_for_an_instance_captures_that_node_with_its_preset(
    recipe_world: Deployed, logical_id: str
) -> None:
    shop, router, settings = recipe_world.shop, recipe_world.router, recipe_world.settings
    properties = _recipes({"AlarmRecipeInstanceId": INSTANCE_A})[logical_id]
    boto3.client("cloudwatch").put_metric_alarm(**properties)
    preset = preset_for_metrics([_watched(properties)])
    assert preset is not None

    set_alarm_state(
        properties["AlarmName"], "ALARM", "Threshold Crossed: 1 datapoint [3.0] was greater than 0.0"
    )

    [invocation] = [i for i in router.drain() if i.function == "TriggerFunction"]
    assert invocation.error is None, invocation.error
    assert invocation.result["status"] == "running", invocation.result
    assert list(invocation.result["nodes"]) == [NODE_A]
    [job] = shop.objects(JOBS, settings.capture_namespace)
    assert job["spec"]["template"]["spec"]["nodeName"] == NODE_A
    session = CaptureStore(settings.capture_table).get_session(invocation.result["capture_id"])
    assert session is not None
    assert (session.preset, session.filter, session.snaplen) == (
        preset.name,
        preset.filter or "",
        preset.snaplen or settings.default_snaplen,
    )
