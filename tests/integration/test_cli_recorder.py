"""``recorder enable|disable|status`` drive the flight recorder through the stack's bus and the cluster."""

from __future__ import annotations

from typing import Any

from localcloud.kube import KubeEmulator
from localcloud.kube.resources import DAEMONSETS, PODS
from localcloud.router import Router
from localcloud.template import Stack
from tests.fixtures.cli import invoke
from tests.fixtures.stack import stack_outputs

CLUSTER = "shop-prod"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NAMESPACE = "eks-capture"


def _bus(stack: Stack) -> list[str]:
    return ["--bus", stack_outputs(stack)["CaptureEventBusName"]]


def _recorder_pods(shop: KubeEmulator) -> list[dict[str, Any]]:
    return [p for p in shop.objects(PODS, NAMESPACE) if "recorder" in p["metadata"]["name"]]


def test_enable_runs_a_recorder_on_the_chosen_nodes_and_status_reports_it(
    stack: Stack, shop: KubeEmulator, router: Router
) -> None:
    code, _, err = invoke(
        "recorder", "enable", "-c", CLUSTER, "--node-label", f"kubernetes.io/hostname={NODE_A}",
        "--ring-minutes", "5", "-r", "intermittent resets", *_bus(stack),
    )  # fmt: skip
    assert code == 0, err
    [invocation] = [i for i in router.drain() if i.function == "TriggerFunction"]
    assert invocation.error is None, invocation.error
    assert len(shop.objects(DAEMONSETS, NAMESPACE)) == 1
    shop.wait_for(
        lambda: any(p["status"].get("phase") == "Running" for p in _recorder_pods(shop)), timeout=30
    )

    code, out, err = invoke("recorder", "status", "-c", CLUSTER)

    assert code == 0, err
    assert out.startswith(f"{NODE_A}: recording")
    assert [p["spec"]["nodeName"] for p in _recorder_pods(shop)] == [NODE_A]


def test_disable_removes_the_recorder(stack: Stack, shop: KubeEmulator, router: Router) -> None:
    invoke("recorder", "enable", "-c", CLUSTER, "-r", "keep the past", *_bus(stack))
    router.drain()
    assert shop.objects(DAEMONSETS, NAMESPACE)

    code, _, err = invoke("recorder", "disable", "-c", CLUSTER, "-r", "incident closed", *_bus(stack))
    router.drain()

    assert code == 0, err
    shop.wait_for(lambda: not shop.objects(DAEMONSETS, NAMESPACE), timeout=30, what="recorder removed")


def test_a_bad_request_fails_locally_with_the_field_named_and_sends_nothing(
    stack: Stack, shop: KubeEmulator, router: Router
) -> None:
    code, _, err = invoke("recorder", "enable", "-c", CLUSTER, "--ring-minutes", "0", "-r", "x", *_bus(stack))

    assert code == 2
    assert "ring_minutes" in err
    assert router.drain() == []
