"""docs/security.md's controls, asserted on the template as CloudFormation receives it (SAM-transformed,
parameters bound): who may start a capture, which events the functions trust, where pods may write."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from eks_capture.captures.context import CONTEXT_NAME
from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from eks_capture.report.building import REPORT_NAME
from eks_capture.settings import Settings
from eks_capture_agent.manifest import MANIFEST
from eks_capture_agent.objects import pcap_key
from eks_capture_agent.spool import SNAPSHOTS
from localcloud.aws import ACCOUNT_ID
from localcloud.template import PROJECT_ROOT, Stack
from tests.fixtures.iam_policies import Decision, decide
from tests.sam_transform import CLUSTER, active_resources, deployed, properties

ONCALL = f"arn:aws:iam::{ACCOUNT_ID}:role/oncall"
SRE = f"arn:aws:iam::{ACCOUNT_ID}:role/sre-*"  # other accounts are unsupported: the bus trusts this one
SECURITY_DOC = PROJECT_ROOT / "docs" / "security.md"
STARTED = datetime(2026, 11, 25, 10, 2, 13, tzinfo=UTC)
NODE = NodeInfo(name="ip-10-0-1-23.ec2.internal", instance_id="i-0a1b2c3d4e5f60718")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return deployed()


def _bus_policy(stack: Stack) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = properties(stack, "CaptureEventBus")["Policy"]["Statement"]
    return statements


def _rules(stack: Stack) -> list[dict[str, Any]]:
    return [
        stack.resolve({k: v for k, v in rule["Properties"].items() if k != "Targets"})
        for rule in active_resources(stack, "AWS::Events::Rule").values()
    ]


def test_by_default_only_principals_of_this_account_may_put_request_events(stack: Stack) -> None:
    (allow,) = _bus_policy(stack)

    assert allow["Effect"] == "Allow"
    assert allow["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert not [s for s in _bus_policy(stack) if s["Effect"] == "Deny"]
    assert allow["Action"] == "events:PutEvents"
    assert allow["Resource"] == stack.arn("CaptureEventBus")


def test_named_request_principals_alone_may_put_request_events_and_only_from_this_account() -> None:
    stack = deployed(CaptureRequestPrincipals=f"{ONCALL},{SRE}")
    statements = _bus_policy(stack)
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]

    assert allow["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert deny["Principal"] == "*"
    assert deny["Action"] == allow["Action"] == "events:PutEvents"
    assert deny["Resource"] == allow["Resource"] == stack.arn("CaptureEventBus")
    assert deny["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [ONCALL, SRE]}}


def _principal_arns(principal: Any) -> list[str]:
    """The ARNs a resource policy's Principal names (a service or ``*`` names none)."""
    if not isinstance(principal, dict):
        return []
    named = principal.get("AWS", [])
    return [named] if isinstance(named, str) else list(named)


def _resource_policy_statements(stack: Stack) -> list[dict[str, Any]]:
    documents = [properties(stack, bus)["Policy"] for bus in active_resources(stack, "AWS::Events::EventBus")]
    for kind, key in (
        ("AWS::S3::BucketPolicy", "PolicyDocument"),
        ("AWS::SQS::QueuePolicy", "PolicyDocument"),
    ):
        documents += [properties(stack, policy)[key] for policy in active_resources(stack, kind)]
    documents += [
        properties(stack, role)["AssumeRolePolicyDocument"]
        for role in active_resources(stack, "AWS::IAM::Role")
    ]
    return [statement for document in documents for statement in document["Statement"]]


def test_no_principal_holds_a_wildcard_inside_an_arn() -> None:
    """IAM accepts a wildcard in a Principal only as the whole of it ("*"); patterns go in conditions."""
    stack = deployed(CaptureRequestPrincipals=f"{ONCALL},{SRE}")
    statements = _resource_policy_statements(stack)
    principals = [arn for s in statements for arn in _principal_arns(s.get("Principal"))]

    assert principals
    assert not [arn for arn in principals if "*" in arn or "?" in arn]


@pytest.mark.parametrize(
    ("principals", "accepted"),
    [
        ("", True),
        (f"{ONCALL},{SRE}", True),
        (f"arn:aws:iam::{ACCOUNT_ID}:user/alice", True),
        ("*", False),
        (f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/oncall/alice", False),
        ("oncall", False),
    ],
)
def test_request_principals_must_be_iam_role_or_user_arns(
    stack: Stack, principals: str, accepted: bool
) -> None:
    pattern = stack.template["Parameters"]["CaptureRequestPrincipals"]["AllowedPattern"]

    assert all(re.fullmatch(pattern, p) for p in principals.split(",")) is accepted


def _our_rules(stack: Stack, detail_types: set[str]) -> list[dict[str, Any]]:
    return [
        r
        for r in _rules(stack)
        if "eks-capture" in r.get("EventPattern", {}).get("source", [])
        and detail_types & set(r["EventPattern"].get("detail-type", []))
    ]


def test_manual_requests_are_heard_only_on_the_request_bus(stack: Stack) -> None:
    bus = stack.name_of("CaptureEventBus")
    manual = _our_rules(stack, {"Start Capture", "Stop Capture", "Start Recorder", "Stop Recorder"})
    on_default_bus = [r for r in _rules(stack) if r.get("EventBusName", "default") == "default"]

    assert [r["EventBusName"] for r in manual] == [bus]
    for rule in on_default_bus:  # PutEvents may not use an aws.* source, so nobody can forge these
        sources = rule.get("EventPattern", {}).get("source", [])
        assert "ScheduleExpression" in rule or (sources and all(s.startswith("aws.") for s in sources)), rule


def test_only_the_teardown_may_announce_a_closed_capture(stack: Stack) -> None:
    bus = stack.name_of("CaptureLifecycleBus")
    (closed,) = _our_rules(stack, {"Capture Closed"})
    (deny,) = properties(stack, "CaptureLifecycleBus")["Policy"]["Statement"]
    putters = {
        role_id: statement["Resource"]
        for role_id in active_resources(stack, "AWS::IAM::Role")
        for policy in properties(stack, role_id).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "events:PutEvents" in statement["Action"]
    }

    assert closed["EventBusName"] == bus
    assert "Capture Closed" not in _our_rules(stack, {"Start Capture"})[0]["EventPattern"]["detail-type"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "events:PutEvents")
    assert deny["Resource"] == stack.arn("CaptureLifecycleBus")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": stack.arn("TeardownRole")}}
    assert putters == {"TeardownRole": stack.arn("CaptureLifecycleBus")}


def test_every_function_rejects_events_from_another_account(stack: Stack) -> None:
    for function_id in ("TriggerFunction", "TeardownFunction", "IndexerFunction", "ReportFunction"):
        environment = properties(stack, function_id)["Environment"]["Variables"]

        assert environment["EXPECTED_ACCOUNT"] == ACCOUNT_ID, function_id
        assert Settings.from_env(environment).expected_account == ACCOUNT_ID


def test_no_bucket_policy_allows_anyone_at_large(stack: Stack) -> None:
    for policy_id in active_resources(stack, "AWS::S3::BucketPolicy"):
        for statement in properties(stack, policy_id)["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] not in ("*", {"AWS": "*"}), policy_id


def test_tls_below_1_2_is_refused_on_the_capture_bucket(stack: Stack) -> None:
    statements = properties(stack, "CaptureBucketPolicy")["PolicyDocument"]["Statement"]

    assert any(
        s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Condition"].get("NumericLessThan", {}).get("s3:TlsVersion") == "1.2"
        for s in statements
    )


def _settings(stack: Stack) -> Settings:
    """The trigger's settings as the deployed stack gives them."""
    variables = properties(stack, "TriggerFunction")["Environment"]["Variables"]
    return Settings.from_env({k: str(v) for k, v in variables.items()})


def _upload_prefix(job: dict[str, Any]) -> str:
    containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
    args: list[str] = containers["upload"]["args"]
    return args[args.index("--prefix") + 1]


def _pod_statements(stack: Stack, cluster: str) -> list[dict[str, Any]]:
    policy_id = "CaptureUploadPolicy" + "".join(c for c in cluster if c.isalnum())
    statements: list[dict[str, Any]] = properties(stack, policy_id)["PolicyDocument"]["Statement"]
    return statements


def _pod_files(prefix: str) -> list[str]:
    """Every key a capture pod's agent writes under its node prefix (capture-image/eks_capture_agent)."""
    pcaps = [pcap_key(prefix, STARTED.timestamp(), seq, suffix) for seq, suffix in [(0, ".zst"), (1, "")]]
    return [*pcaps, f"{prefix}{MANIFEST}", *(f"{prefix}{name}" for name in SNAPSHOTS)]


@pytest.mark.parametrize("cluster", [CLUSTER, "payments-eu"])
def test_a_capture_pod_may_write_and_confirm_every_file_its_agent_uploads(cluster: str) -> None:
    stack = deployed(ClusterNames=cluster)
    settings = _settings(stack)
    spec = CaptureSpec(
        capture_id_for_event("event-1", STARTED), cluster, CaptureOptions.defaults(settings), "proof", STARTED
    )
    prefix = _upload_prefix(capture_job(spec, NODE, settings))
    statements = _pod_statements(stack, cluster)

    assert prefix == f"captures/{cluster}/{spec.capture_id}/{NODE.name}/"
    for key in _pod_files(prefix):
        for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
            resource = f"arn:aws:s3:::{settings.capture_bucket}/{key}"
            assert decide(statements, action, resource) is Decision.ALLOWED, (action, key)


@pytest.mark.parametrize("cluster", [CLUSTER, "payments-eu"])
def test_a_capture_pod_can_never_write_a_report_a_context_or_outside_its_clusters_prefix(
    cluster: str,
) -> None:
    stack = deployed(ClusterNames=cluster)
    bucket = _settings(stack).capture_bucket
    statements = _pod_statements(stack, cluster)
    capture = capture_id_for_event("event-1", STARTED)
    explicitly_denied = [
        f"captures/{cluster}/{capture}/{REPORT_NAME}",
        f"captures/{cluster}/{capture}/{CONTEXT_NAME}",
        f"captures/{cluster}/{capture}/{NODE.name}/{REPORT_NAME}",
        f"captures/other-cluster/{capture}/{NODE.name}/{MANIFEST}",
        f"{capture}/{NODE.name}/{MANIFEST}",
        "index.html",
    ]
    not_granted = [
        f"captures/{cluster}/{capture}/{NODE.name}/notes.txt",
        f"captures/{cluster}/{capture}.pcap",
    ]

    for key in explicitly_denied:
        for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:PutObjectAcl"):
            decision = decide(statements, action, f"arn:aws:s3:::{bucket}/{key}")
            assert decision is Decision.EXPLICITLY_DENIED, (action, key)
    for key in not_granted:
        assert decide(statements, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}") is not Decision.ALLOWED, key
    assert decide(statements, "s3:ListBucket", f"arn:aws:s3:::{bucket}") is Decision.EXPLICITLY_DENIED


def test_a_filter_reaches_tcpdump_as_one_argument_and_no_container_runs_a_shell(stack: Stack) -> None:
    settings = _settings(stack)
    bpf = "tcp and (port 80 or port 443) && !icmp | udp[0:2] > 1024"
    options = replace(CaptureOptions.defaults(settings), filter=bpf)
    spec = CaptureSpec(capture_id_for_event("event-1", STARTED), CLUSTER, options, "proof", STARTED)
    containers = capture_job(spec, NODE, settings)["spec"]["template"]["spec"]["containers"]
    capture = next(c for c in containers if c["name"] == "capture")

    assert capture["args"][capture["args"].index("--filter") + 1] == bpf
    for container in containers:
        argv = [*container.get("command", []), *container.get("args", [])]
        assert not {"sh", "/bin/sh", "bash", "/bin/bash", "-c"} & set(argv), container["name"]


def test_the_documented_default_snap_length_is_the_one_captures_get() -> None:
    stated = re.search(r"default snap length is ([\d,]+) bytes", SECURITY_DOC.read_text())

    assert stated is not None, "docs/security.md must state the default snap length"
    assert int(stated[1].replace(",", "")) == Settings.model_fields["default_snaplen"].default
