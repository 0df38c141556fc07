"""The template's alarm recipes: off by default; when on, each one fired for an instance captures its node.

The alarms are created in moto from template.yaml's own resolved properties (as CloudFormation would
create them), fired with an InstanceId dimension through localcloud.cloudwatch, and routed by the
template's rules to the trigger.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from eks_capture.captures.presets import preset_for_metrics
from eks_capture.events.models import Metric
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.cloudwatch import set_alarm_state
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.router import Router
from localcloud.template import PROJECT_ROOT, Stack, load_template
from tests.fixtures.stack import STACK_PARAMETERS

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


@pytest.mark.parametrize("logical_id", sorted(_recipes({"AlarmRecipeInstanceId": INSTANCE_A})))
def test_a_recipe_alarm_fired_for_an_instance_captures_that_node_with_its_preset(
    shop: KubeEmulator, router: Router, settings: Settings, logical_id: str
) -> None:
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
