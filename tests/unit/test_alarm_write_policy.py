"""docs/examples/deny-alarm-writes.json, the SCP docs/security.md ships: alarm-write rights on prefixed
alarms are capture rights, and the example keeps them to named roles.

What these tests prove: the policy's grammar as cfn-lint checks an identity policy (statement schema,
condition operators, every action a real CloudWatch action: W3037), that every denied action takes the
``alarm`` resource type and the Resource matches its ARN format (AWS's service authorization data as
cfn-lint ships it), that it covers every CloudWatch action that creates an alarm or changes its state or
tags, and what IAM's evaluation logic decides with it (tests/fixtures/iam_policies.py).
What they cannot prove: that AWS Organizations applies it. No local stand-in evaluates SCPs or permission
boundaries, and moto authorizes CloudWatch actions against resource ``*`` only, so a resource-scoped Deny
never matches there (tests/integration/test_security_pod_writes.py uses moto where it does look at the
resource: S3).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from typing import Any

import pytest

from localcloud.template import PROJECT_ROOT, load_template
from tests.fixtures.iam_policies import Decision, decide

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "deny-alarm-writes.json"
SAM_PYTHON = PROJECT_ROOT / ".venv-sam" / "bin" / "python"
SCP_MAX_CHARACTERS = 5120  # AWS Organizations' limit on an SCP's size
PREFIX = str(load_template()["Parameters"]["AlarmNamePrefix"]["Default"])
ALARM = f"arn:aws:cloudwatch:us-west-2:123456789012:alarm:{PREFIX}node-drops"
OTHER_ALARM = "arn:aws:cloudwatch:us-west-2:123456789012:alarm:checkout-latency"
NAMED = "arn:aws:iam::123456789012:role/eks-capture-alarm-writers"
DEVELOPER = "arn:aws:iam::123456789012:role/developer"
# What can create an alarm (Put*Alarm), move its state or change its tags: each can start or shape a capture.
ALARM_WRITES = re.compile(r"^(put\w*alarm|setalarmstate|tagresource|untagresource)$")
# Run in .venv-sam (cfn-lint's pins are SAM CLI's): lint each policy given as an identity policy, and read
# CloudWatch's actions and alarm resource type from the service authorization data cfn-lint ships.
_IN_SAM_ENV = """
import importlib.resources, json, sys
from cfnlint.api import lint

def lint_policy(document):
    resource = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": document}}
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"P": resource}}
    return [f"{m.rule.id} {m.message}" for m in lint(json.dumps(template))]

specs = importlib.resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json")
cloudwatch = json.loads(specs.read_text())["cloudwatch"]
print(json.dumps({
    "lint": {name: lint_policy(document) for name, document in json.loads(sys.argv[1]).items()},
    "actions": cloudwatch["Actions"],
    "alarm": cloudwatch["Resources"]["alarm"],
}))
"""


def _policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return policy


def _statement() -> dict[str, Any]:
    (statement,) = _policy()["Statement"]
    return dict(statement)


def _misspelt() -> dict[str, Any]:
    """The example with one action misspelt: the lint check must report it."""
    return {"Version": "2012-10-17", "Statement": [{**_statement(), "Action": ["cloudwatch:SetAlarmStat"]}]}


@cache
def _checked() -> dict[str, Any]:
    """cfn-lint's findings on the example and a misspelt copy; CloudWatch's actions and alarm resource."""
    documents = json.dumps({"example": _policy(), "misspelt": _misspelt()})
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", _IN_SAM_ENV, documents],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _action_names(statement: dict[str, Any]) -> set[str]:
    return {a.removeprefix("cloudwatch:").lower() for a in statement["Action"]}


def test_the_example_passes_cfn_lints_identity_policy_checks() -> None:
    assert _checked()["lint"]["example"] == []


def test_the_lint_check_refuses_a_misspelt_action() -> None:
    """The grammar check above can fail: a misspelt action is reported."""
    (finding,) = _checked()["lint"]["misspelt"]

    assert finding.startswith("W3037 'setalarmstat' is not one of")


def test_every_denied_action_is_authorized_on_the_alarm_so_the_resource_scoping_applies() -> None:
    data = _checked()
    (arn_format,) = data["alarm"]["ARNFormats"]
    pattern = re.escape(arn_format).replace(r"\.\*", ".*")
    pattern = re.sub(r"\\\$\\\{\w+\\\}", "[^:]*", pattern)
    statement = _statement()

    for action in _action_names(statement):
        assert "alarm" in data["actions"][action]["Resources"], action
    assert re.fullmatch(pattern, statement["Resource"]), (pattern, statement["Resource"])
    assert statement["Resource"].endswith(f":alarm:{PREFIX}*")


def test_the_example_denies_every_action_that_creates_an_alarm_or_changes_its_state_or_tags() -> None:
    data = _checked()
    writes = {action for action, spec in data["actions"].items() if ALARM_WRITES.match(action)}

    assert {"putmetricalarm", "putcompositealarm", "setalarmstate", "tagresource"} <= writes
    assert _action_names(_statement()) == writes


def test_the_example_is_an_scp_aws_organizations_accepts() -> None:
    policy = _policy()

    assert policy["Version"] == "2012-10-17"
    assert len(json.dumps(policy, separators=(",", ":"))) <= SCP_MAX_CHARACTERS
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert statement["Effect"] == "Deny"


EVERYTHING = {"Effect": "Allow", "Action": "*", "Resource": "*"}  # as FullAWSAccess, the default SCP


@pytest.mark.parametrize(
    ("principal", "action", "alarm", "decision"),
    [
        (DEVELOPER, "cloudwatch:PutMetricAlarm", ALARM, Decision.EXPLICITLY_DENIED),
        (DEVELOPER, "cloudwatch:SetAlarmState", ALARM, Decision.EXPLICITLY_DENIED),
        (DEVELOPER, "cloudwatch:TagResource", ALARM, Decision.EXPLICITLY_DENIED),
        (DEVELOPER, "cloudwatch:PutCompositeAlarm", ALARM, Decision.EXPLICITLY_DENIED),
        (NAMED, "cloudwatch:PutMetricAlarm", ALARM, Decision.ALLOWED),
        (NAMED, "cloudwatch:TagResource", ALARM, Decision.ALLOWED),
        (DEVELOPER, "cloudwatch:PutMetricAlarm", OTHER_ALARM, Decision.ALLOWED),
        (DEVELOPER, "cloudwatch:DescribeAlarms", ALARM, Decision.ALLOWED),
    ],
    ids=[
        "an unnamed role may not create a capture alarm",
        "an unnamed role may not set a capture alarm's state",
        "an unnamed role may not retag a capture alarm",
        "an unnamed role may not create a composite capture alarm",
        "a named role may create a capture alarm",
        "a named role may tag a capture alarm",
        "alarms without the prefix are not touched",
        "reading capture alarms stays allowed",
    ],
)
def test_only_the_named_roles_may_write_alarms_with_the_stacks_prefix(
    principal: str, action: str, alarm: str, decision: Decision
) -> None:
    statements = [EVERYTHING, _statement()]

    assert decide(statements, action, alarm, {"aws:PrincipalArn": principal}) is decision
