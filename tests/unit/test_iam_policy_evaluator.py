"""The test suite's IAM evaluator (tests/fixtures/iam_policies.py) decides as IAM's documented logic does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.iam_policies import Decision, decide, wildcard_matches

OBJECTS = "arn:aws:s3:::pcaps/captures/shop/*"
PCAP = "arn:aws:s3:::pcaps/captures/shop/c/n/1.pcap"
ALLOW_PUT = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": OBJECTS}
DENY_REPORTS = {
    "Effect": "Deny",
    "Action": "s3:*",
    "Resource": "arn:aws:s3:::pcaps/captures/shop/*/report.html",
}
DENY_OUTSIDE = {"Effect": "Deny", "Action": "s3:*", "NotResource": OBJECTS}
ONCALL_ONLY = {
    "Effect": "Deny",
    "Action": "cloudwatch:SetAlarmState",
    "Resource": "*",
    "Condition": {"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/oncall-*"]}},
}
ALLOW_ALARMS = {"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("captures/*/report.html", "captures/a/b/report.html", True),
        ("captures/*/report.html", "captures/report.html", False),
        ("netstate-*.json", "netstate-before.json", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a.c", "abc", False),
        ("role/(x)+", "role/(x)+", True),
    ],
)
def test_a_wildcard_pattern_matches_as_iam_globs_do(pattern: str, value: str, matches: bool) -> None:
    assert wildcard_matches(pattern, value) is matches


@pytest.mark.parametrize(
    ("statements", "action", "resource", "context", "decision"),
    [
        ([ALLOW_PUT], "s3:PutObject", PCAP, {}, Decision.ALLOWED),
        ([ALLOW_PUT], "S3:putobject", PCAP, {}, Decision.ALLOWED),
        (
            [ALLOW_PUT],
            "s3:GetObject",
            "arn:aws:s3:::pcaps/captures/shop/c/n/1.pcap",
            {},
            Decision.IMPLICITLY_DENIED,
        ),
        (
            [ALLOW_PUT],
            "s3:PutObject",
            "arn:aws:s3:::pcaps/captures/other/c/1.pcap",
            {},
            Decision.IMPLICITLY_DENIED,
        ),
        (
            [ALLOW_PUT, DENY_REPORTS],
            "s3:PutObject",
            "arn:aws:s3:::pcaps/captures/shop/c/report.html",
            {},
            Decision.EXPLICITLY_DENIED,
        ),
        (
            [ALLOW_PUT, DENY_OUTSIDE],
            "s3:PutObject",
            "arn:aws:s3:::pcaps/other",
            {},
            Decision.EXPLICITLY_DENIED,
        ),
        (
            [ALLOW_PUT, DENY_OUTSIDE],
            "s3:PutObject",
            "arn:aws:s3:::pcaps/captures/shop/x",
            {},
            Decision.ALLOWED,
        ),
        (
            [ALLOW_ALARMS, ONCALL_ONLY],
            "cloudwatch:SetAlarmState",
            "arn:aws:cloudwatch:us-west-2:1:alarm:a",
            {"aws:PrincipalArn": "arn:aws:iam::1:role/dev"},
            Decision.EXPLICITLY_DENIED,
        ),
        (
            [ALLOW_ALARMS, ONCALL_ONLY],
            "cloudwatch:SetAlarmState",
            "arn:aws:cloudwatch:us-west-2:1:alarm:a",
            {"aws:PrincipalArn": "arn:aws:iam::1:role/oncall-eu"},
            Decision.ALLOWED,
        ),
        (
            [ALLOW_ALARMS, ONCALL_ONLY],
            "cloudwatch:SetAlarmState",
            "arn:aws:cloudwatch:us-west-2:1:alarm:a",
            {},
            Decision.EXPLICITLY_DENIED,
        ),
    ],
    ids=[
        "an allow grants its action on its resources",
        "actions match case-insensitively",
        "another action is not granted",
        "another resource is not granted",
        "an explicit deny wins over an allow",
        "a deny with NotResource refuses what lies outside",
        "a deny with NotResource leaves what lies inside",
        "a condition's ArnNotLike refuses an unnamed principal",
        "a condition's ArnNotLike lets a named principal through",
        "a negated condition holds when its key is absent, so the deny applies",
    ],
)
def test_the_evaluator_decides_as_iam_does(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str], decision: Decision
) -> None:
    assert decide(statements, action, resource, context) is decision


def test_an_operator_the_evaluator_does_not_know_fails_loudly() -> None:
    statement = {**ALLOW_PUT, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}

    with pytest.raises(ValueError, match="IpAddress"):
        decide([statement], "s3:PutObject", "arn:aws:s3:::pcaps/captures/shop/x")
