"""The stack's resources carry the protections the issue lists, on the template CloudFormation receives."""

from __future__ import annotations

import json
import shlex
import tomllib
from fnmatch import fnmatchcase
from typing import Any

import pytest

from eks_capture.events.models import StartCapture, parse_event
from eks_capture.kube.eks import REQUEST_TIMEOUT, worst_call_seconds
from eks_capture.store.keys import worst_transaction_wait_seconds
from localcloud.aws import ACCOUNT_ID, REGION
from localcloud.template import PROJECT_ROOT, Stack
from tests.events import load_event
from tests.sam_transform import CLUSTER, active_resources, deployed, properties

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0b5c3e2a-1f4d-4c8e-9a7b-2d6e8f0a1b3c"
FUNCTIONS = ("TriggerFunction", "TeardownFunction", "IndexerFunction", "ReportFunction")
# Functions that call the cluster API: a reserved concurrency bounds the load they put on it.
CLUSTER_CALLERS = ("TriggerFunction", "TeardownFunction")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return deployed()


def _functions(stack: Stack) -> dict[str, dict[str, Any]]:
    return {f: properties(stack, f) for f in FUNCTIONS}


def _layers(stack: Stack, function_id: str) -> set[str]:
    """The template names of a function's layers (SAM suffixes each LayerVersion with a hash)."""
    names = {
        physical: template_name
        for physical in active_resources(stack, "AWS::Lambda::LayerVersion")
        for template_name in ("SharedLayer", "KubernetesLayer", "ReportLayer")
        if physical.startswith(template_name)
    }
    return {names[ref["Ref"]] for ref in stack.resources[function_id]["Properties"]["Layers"]}


def test_functions_run_python313_on_arm64_traced_with_the_shared_layer(stack: Stack) -> None:
    for function_id, props in _functions(stack).items():
        assert props["Runtime"] == "python3.13", function_id
        assert props["Architectures"] == ["arm64"], function_id
        assert props["TracingConfig"] == {"Mode": "Active"}, function_id
        assert "SharedLayer" in _layers(stack, function_id), function_id


def test_only_the_functions_that_call_the_cluster_api_carry_the_kubernetes_client(stack: Stack) -> None:
    carrying = {f for f in FUNCTIONS if "KubernetesLayer" in _layers(stack, f)}

    assert carrying == set(CLUSTER_CALLERS)


def test_each_function_names_its_powertools_service_and_logs_at_the_chosen_level() -> None:
    stack = deployed(LogLevel="DEBUG")
    environments = [props["Environment"]["Variables"] for props in _functions(stack).values()]

    assert len({env["POWERTOOLS_SERVICE_NAME"] for env in environments}) == len(FUNCTIONS)
    assert {env["POWERTOOLS_LOG_LEVEL"] for env in environments} == {"DEBUG"}
    assert all(env["POWERTOOLS_METRICS_NAMESPACE"] for env in environments)


def test_functions_that_call_the_cluster_api_have_reserved_concurrency(stack: Stack) -> None:
    for function_id in CLUSTER_CALLERS:
        assert properties(stack, function_id)["ReservedConcurrentExecutions"] >= 1


def test_a_stalled_cluster_call_gives_up_before_the_function_that_makes_it_times_out(stack: Stack) -> None:
    connect, read = REQUEST_TIMEOUT
    for function_id in CLUSTER_CALLERS:
        timeout = properties(stack, function_id)["Timeout"]
        assert 0 < connect < read < timeout, function_id
        assert worst_call_seconds() < timeout, f"{function_id}: every attempt stalled outlasts the function"


def test_a_throttled_transaction_gives_up_before_the_function_that_makes_it_times_out(stack: Stack) -> None:
    for function_id in FUNCTIONS:  # each speaks to the capture index; at production's backoff
        timeout = properties(stack, function_id)["Timeout"]
        assert worst_transaction_wait_seconds() < timeout, f"{function_id}: the store's retries outlast it"


def test_failed_invocations_and_undeliverable_events_land_in_the_dead_letter_queue(stack: Stack) -> None:
    queue = stack.arn("FailedEventsQueue")
    rules = active_resources(stack, "AWS::Events::Rule")

    assert len(rules) >= len(FUNCTIONS)
    for props in _functions(stack).values():
        assert props["DeadLetterConfig"] == {"TargetArn": queue}
    for rule_id in rules:
        for target in stack.resources[rule_id]["Properties"]["Targets"]:
            assert stack.resolve(target["DeadLetterConfig"]) == {"Arn": queue}, rule_id
            assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, rule_id
            assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] >= 60, rule_id


def _rule_arn(stack: Stack, rule_id: str) -> str:
    props = stack.resolve({k: v for k, v in stack.resources[rule_id]["Properties"].items() if k != "Targets"})
    bus = props.get("EventBusName")
    path = f"{bus}/{props['Name']}" if bus and bus != "default" else props["Name"]
    return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{path}"


def test_only_this_stacks_rules_may_send_to_the_dead_letter_queue(stack: Stack) -> None:
    policy = properties(stack, "FailedEventsQueuePolicy")["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]

    patterns = allow["Condition"]["ArnLike"]["aws:SourceArn"]
    rules = [_rule_arn(stack, rule_id) for rule_id in active_resources(stack, "AWS::Events::Rule")]

    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert all(any(fnmatchcase(rule, pattern) for pattern in patterns) for rule in rules)
    assert all(any(fnmatchcase(rule, pattern) for rule in rules) for pattern in patterns)


def _denies_plain_http(policy: dict[str, Any], resource_arn: str) -> bool:
    return any(
        s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false"
        and {resource_arn, f"{resource_arn}/*"} <= set(s["Resource"])
        for s in policy["Statement"]
    )


def test_the_capture_bucket_is_private_tls_only_logged_and_notifies_eventbridge(stack: Stack) -> None:
    bucket = properties(stack, "CaptureBucket")
    policy = properties(stack, "CaptureBucketPolicy")

    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == stack.name_of("AccessLogBucket")
    assert policy["Bucket"] == stack.name_of("CaptureBucket")
    assert _denies_plain_http(policy["PolicyDocument"], stack.arn("CaptureBucket"))


def test_only_s3_logging_for_the_capture_bucket_may_write_the_access_log_bucket(stack: Stack) -> None:
    log_bucket = properties(stack, "AccessLogBucket")
    policy = properties(stack, "AccessLogBucketPolicy")["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]

    assert set(log_bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}  # S3 server access logging cannot write to SSE-KMS targets
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == stack.arn("CaptureBucket")
    assert _denies_plain_http(policy, stack.arn("AccessLogBucket"))


@pytest.mark.parametrize(
    ("kms_key", "expected"),
    [
        ("", {"SSEAlgorithm": "AES256"}),
        (KEY, {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY}),
    ],
)
def test_pcaps_are_encrypted_with_sse_s3_unless_a_kms_key_is_given(
    kms_key: str, expected: dict[str, str]
) -> None:
    stack = deployed(KmsKeyArn=kms_key)
    (rule,) = properties(stack, "CaptureBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    assert rule["ServerSideEncryptionByDefault"] == expected


@pytest.mark.parametrize("days", ["1", "30", "400"])
def test_pcaps_expire_after_the_retention_days_and_abandoned_uploads_after_a_day(days: str) -> None:
    rules = properties(deployed(RetentionDays=days), "CaptureBucket")["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "ExpirationInDays" in r]

    assert [(r["Prefix"], r["ExpirationInDays"]) for r in expiring] == [("captures/", days)]
    assert [
        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        for r in rules
        if "AbortIncompleteMultipartUpload" in r
    ] == [1]


def test_an_existing_bucket_replaces_the_created_ones_everywhere() -> None:
    stack = deployed(ExistingBucketName="team-pcaps")
    indexer_rule = next(
        stack.resolve(r["Properties"]["EventPattern"])
        for r in active_resources(stack, "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"] and r["Properties"]["EventPattern"]["source"] == ["aws.s3"]
    )

    assert active_resources(stack, "AWS::S3::Bucket") == {}
    assert active_resources(stack, "AWS::S3::BucketPolicy") == {}
    assert {p["Environment"]["Variables"]["CAPTURE_BUCKET"] for p in _functions(stack).values()} == {
        "team-pcaps"
    }
    assert indexer_rule["detail"]["bucket"]["name"] == ["team-pcaps"]
    assert stack.resolve(stack.template["Outputs"]["CaptureBucketName"]["Value"]) == "team-pcaps"


def test_the_indexer_hears_only_objects_under_its_clusters_prefix(stack: Stack) -> None:
    (pattern,) = [
        stack.resolve(r["Properties"]["EventPattern"])
        for r in active_resources(stack, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
    ]

    assert pattern["detail"]["object"]["key"] == [{"prefix": f"captures/{CLUSTER}/"}]


def test_the_capture_table_has_pitr_ttl_encryption_and_the_design_indexes(stack: Stack) -> None:
    table = properties(stack, "CaptureIndexTable")

    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    assert stack.resources["CaptureIndexTable"]["DeletionPolicy"] == "Retain"


def test_the_functions_log_groups_expire(stack: Stack) -> None:
    days = deployed(LogRetentionDays="14")
    for function_id in FUNCTIONS:
        log_group = stack.resources[function_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert properties(days, log_group)["RetentionInDays"] == "14"


def test_the_dashboard_charts_every_function_and_the_dead_letter_queue(stack: Stack) -> None:
    body = json.loads(properties(stack, "Dashboard")["DashboardBody"])
    charted = {
        str(value) for widget in body["widgets"] for row in widget["properties"]["metrics"] for value in row
    }

    assert {stack.physical_id(f) for f in FUNCTIONS} <= charted
    assert stack.name_of("FailedEventsQueue") in charted


def test_the_start_capture_output_is_a_manual_request_the_trigger_accepts(stack: Stack) -> None:
    command = shlex.split(str(stack.resolve(stack.template["Outputs"]["StartCaptureCommand"]["Value"])))
    (entry,) = json.loads(command[command.index("--entries") + 1])
    envelope = load_event("start-capture-all")
    envelope.update(source=entry["Source"], **{"detail-type": entry["DetailType"]})
    envelope["detail"] = json.loads(entry["Detail"])

    event = parse_event(envelope)

    assert command[:3] == ["aws", "events", "put-events"]
    assert entry["EventBusName"] == stack.name_of("CaptureEventBus")
    assert isinstance(event, StartCapture)
    assert event.detail.cluster == CLUSTER


def test_outputs_name_the_bucket_table_bus_and_topic() -> None:
    stack = deployed(NotificationEmail="oncall@example.com")
    outputs = {
        name: stack.resolve(output["Value"])
        for name, output in stack.template["Outputs"].items()
        if "Condition" not in output or stack.condition(output["Condition"])
    }

    assert outputs["CaptureBucketName"] == stack.name_of("CaptureBucket")
    assert outputs["CaptureTableName"] == stack.name_of("CaptureIndexTable")
    assert outputs["CaptureEventBusName"] == stack.name_of("CaptureEventBus")
    assert outputs["NotificationTopicArn"] == stack.physical_id("NotificationTopic")


def test_the_sample_samconfig_sets_every_required_parameter_and_names_no_unknown_one(stack: Stack) -> None:
    config = tomllib.loads((PROJECT_ROOT / "samconfig.toml.example").read_text())["default"]["deploy"][
        "parameters"
    ]
    given = {override.split("=", 1)[0] for override in config["parameter_overrides"]}
    required = {name for name, spec in stack.template["Parameters"].items() if "Default" not in spec}

    assert required <= given <= set(stack.template["Parameters"])
    assert "CAPABILITY_IAM" in config["capabilities"].split()
    assert "profile" not in config
