"""The alarm path is a capture path, and bounded: a tagged CloudWatch alarm in moto goes to ALARM, its
state change crosses EventBridge by the template's rule to the trigger, and the stack's alarm caps (the
template's defaults) clip or refuse what the tags ask; the session, the start notification and
``eks-capture show`` say which and why."""

from __future__ import annotations

import json

import boto3
import pytest
from typer.testing import CliRunner

from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession
from eks_capture_cli import app
from localcloud.aws import MotoServer
from localcloud.cloudwatch import set_alarm_state
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.router import Invocation, Router
from localcloud.template import Stack
from tests.fixtures.stack import STACK_PARAMETERS, deploy_stack

NODE = "ip-192-168-12-34.us-west-2.compute.internal"
INSTANCE = "i-0a1b2c3d4e5f60718"


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Stack:
    """The stack with the template's default alarm caps and an e-mail address (so it has a topic), plus
    the parameters a test gives (indirect parametrization)."""
    given: dict[str, str] = getattr(request, "param", {})
    return deploy_stack({**STACK_PARAMETERS, "NotificationEmail": "oncall@example.com", **given}, monkeypatch)


def _fire(settings: Settings, router: Router, name: str, tags: dict[str, str]) -> Invocation:
    """A CloudWatch alarm on the node's instance, tagged ``tags``, goes to ALARM; the trigger's invocation."""
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{settings.alarm_name_prefix}{name}",
        Namespace="AWS/EC2",
        MetricName="NetworkPacketsIn",
        Dimensions=[{"Name": "InstanceId", "Value": INSTANCE}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )
    set_alarm_state(f"{settings.alarm_name_prefix}{name}", "ALARM", "Threshold Crossed: 1 datapoint [9.0]")
    [invocation] = [i for i in router.drain() if i.function == "TriggerFunction"]
    assert invocation.error is None, invocation.error
    return invocation


def _session(settings: Settings, invocation: Invocation) -> CaptureSession:
    session = CaptureStore(settings.capture_table).get_session(invocation.result["capture_id"])
    assert session is not None
    return session


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _notifications(inbox: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [str(json.loads(m["Body"])["Message"]) for m in messages.get("Messages", [])]


def test_an_alarm_asking_beyond_the_caps_captures_within_them_and_says_what_it_did_not_get(
    shop: KubeEmulator, live: Router, settings: Settings, inbox: str
) -> None:
    tags = {"eks-capture:snaplen": "65535", "eks-capture:fallback": "all", "eks-capture:duration": "3600"}

    invocation = _fire(settings, live, "greedy", tags)

    assert invocation.result["status"] == "running", invocation.result
    session = _session(settings, invocation)
    assert (session.snaplen, session.duration_seconds) == (1536, 900)
    assert set(session.limited) == {"snaplen", "duration", "fallback"}
    assert session.limited["snaplen"].startswith("clipped from 65535 to 1536 bytes")
    assert session.limited["fallback"].startswith("refused eks-capture:fallback=all")
    [job] = shop.objects(JOBS, settings.capture_namespace)
    capture = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (_option(capture, "--snaplen"), _option(capture, "--duration")) == ("1536", "900")
    [started] = _notifications(inbox)
    assert "Alarm caps:" in started
    assert "  - fallback: refused eks-capture:fallback=all" in started
    shown = CliRunner().invoke(app, ["show", session.capture_id, "--table", settings.capture_table])
    assert shown.exit_code == 0, shown.output
    assert "alarm cap on snaplen: clipped from 65535 to 1536 bytes" in shown.output
    assert "alarm cap on fallback: refused eks-capture:fallback=all" in shown.output


def test_an_alarm_within_the_caps_is_not_limited(
    shop: KubeEmulator, live: Router, settings: Settings
) -> None:
    invocation = _fire(settings, live, "modest", {"eks-capture:snaplen": "128", "eks-capture:duration": "60"})

    session = _session(settings, invocation)
    assert (session.snaplen, session.duration_seconds, session.limited) == (128, 60, {})


@pytest.mark.parametrize(
    "stack",
    [{"ClusterNames": "shop-prod,payments-prod", "AlarmClusterNames": "payments-prod"}],
    indirect=True,
)
def test_an_alarm_about_a_cluster_alarms_may_not_capture_on_is_refused_and_recorded(
    shop: KubeEmulator, live: Router, settings: Settings
) -> None:
    invocation = _fire(settings, live, "shop", {"eks-capture:cluster": "shop-prod"})

    assert invocation.result["status"] == "rejected", invocation.result
    session = _session(settings, invocation)
    assert session.status == "rejected"
    assert session.verdict.startswith("refused cluster shop-prod: alarms may capture only on payments-prod")
    assert session.limited["cluster"] == session.verdict
    assert shop.objects(JOBS, settings.capture_namespace) == []
