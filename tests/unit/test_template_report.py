"""The report function's least privilege and wiring, on the template CloudFormation receives."""

from __future__ import annotations

import pytest

from eks_capture.report.delivery import NOTIFY_RESERVE_SECONDS
from localcloud.template import Stack
from tests.sam_transform import active_resources, deployed, properties, role_statements

DEPLOYMENTS = {
    "defaults": {},
    "existing bucket, e-mail": {
        "ExistingBucketName": "team-pcaps",
        "NotificationEmail": "oncall@example.com",
    },
}


@pytest.fixture(params=list(DEPLOYMENTS), scope="module")
def stack(request: pytest.FixtureRequest) -> Stack:
    return deployed(**DEPLOYMENTS[request.param])


def _clusters(stack: Stack) -> list[str]:
    environment = properties(stack, "ReportFunction")["Environment"]["Variables"]
    return str(environment.get("CLUSTER_NAMES") or environment["DEFAULT_CLUSTER"]).split(",")


def _bucket(stack: Stack) -> str:
    return stack.values["ExistingBucketName"] or stack.name_of("CaptureBucket")


def _allowed(stack: Stack, prefix: str) -> dict[str, set[str]]:
    """Action -> resources, for the report role's actions of one service."""
    allowed: dict[str, set[str]] = {}
    for statement in role_statements(stack, "ReportRole"):
        for action in statement["Action"]:
            if action.startswith(prefix):
                allowed.setdefault(action, set()).update(statement["Resource"])
    return allowed


def test_the_report_function_reads_its_clusters_captures_and_writes_only_their_reports(stack: Stack) -> None:
    s3 = _allowed(stack, "s3:")
    captures = {f"arn:aws:s3:::{_bucket(stack)}/captures/{cluster}/" for cluster in _clusters(stack)}

    assert set(s3) == {"s3:GetObject", "s3:PutObject"}
    assert {r.removesuffix("*") for r in s3["s3:GetObject"]} == captures
    assert {r.removesuffix("*/report.html") for r in s3["s3:PutObject"]} == captures
    assert all(r.endswith("/*/report.html") for r in s3["s3:PutObject"])


def test_the_report_function_reads_the_index_and_marks_sessions_but_writes_no_items(stack: Stack) -> None:
    dynamodb = _allowed(stack, "dynamodb:")

    assert set(dynamodb) == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}
    assert set().union(*dynamodb.values()) == {stack.arn("CaptureIndexTable")}


def test_the_report_function_neither_reaches_the_cluster_nor_puts_events(stack: Stack) -> None:
    actions = {a for s in role_statements(stack, "ReportRole") for a in s["Action"]}
    entries = [properties(stack, e)["PrincipalArn"] for e in active_resources(stack, "AWS::EKS::AccessEntry")]

    assert not {a for a in actions if a.startswith(("eks:", "events:", "sts:"))}
    assert stack.arn("ReportRole") not in entries


def test_the_report_function_notifies_only_the_stacks_topic_and_only_when_an_address_is_given(
    stack: Stack,
) -> None:
    sns = _allowed(stack, "sns:")

    if stack.values["NotificationEmail"]:
        assert sns == {"sns:Publish": {stack.physical_id("NotificationTopic")}}
    else:
        assert sns == {}


def test_only_the_teardown_is_told_the_lifecycle_bus_and_the_report_function_listens_there(
    stack: Stack,
) -> None:
    told = {
        function_id
        for function_id in active_resources(stack, "AWS::Lambda::Function")
        if "LIFECYCLE_BUS_NAME" in properties(stack, function_id)["Environment"]["Variables"]
    }
    rules = [
        stack.resolve({k: v for k, v in rule["Properties"].items() if k != "Targets"})
        for rule in active_resources(stack, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": ["ReportFunction", "Arn"]} for t in rule["Properties"]["Targets"])
    ]

    assert told == {"TeardownFunction"}
    assert properties(stack, "TeardownFunction")["Environment"]["Variables"]["LIFECYCLE_BUS_NAME"] == (
        stack.name_of("CaptureLifecycleBus")
    )
    [rule] = rules
    assert rule["EventBusName"] == stack.name_of("CaptureLifecycleBus")
    assert rule["EventPattern"] == {"source": ["eks-capture"], "detail-type": ["Capture Closed"]}


def test_the_report_function_has_most_of_its_invocation_for_the_report(stack: Stack) -> None:
    timeout = int(properties(stack, "ReportFunction")["Timeout"])

    assert timeout - NOTIFY_RESERVE_SECONDS >= 600
