"""Least privilege, asserted on the template as CloudFormation receives it: transformed, parameters bound."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture_cli.cluster_manifests import TEARDOWN_GROUP, TRIGGER_GROUP, cluster_manifests, stack_names
from localcloud.aws import ACCOUNT_ID, REGION
from localcloud.template import Stack
from tests.sam_transform import (
    active_resources,
    allowed_statements,
    chosen_branch,
    deployed,
    properties,
    referenced,
    role_statements,
)

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0b5c3e2a-1f4d-4c8e-9a7b-2d6e8f0a1b3c"
# Actions AWS authorizes on no resource but "*" (no resource-level permissions exist for them).
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ec2:DescribeInstances"}
FUNCTION_ROLES = {
    "TriggerFunction": "TriggerRole",
    "TeardownFunction": "TeardownRole",
    "IndexerFunction": "IndexerRole",
    "ReportFunction": "ReportRole",
}

DEPLOYMENTS = {
    "defaults": {},
    "existing KMS-encrypted bucket, e-mail, IRSA": {
        "ExistingBucketName": "team-pcaps",
        "KmsKeyArn": KEY,
        "NotificationEmail": "oncall@example.com",
        "PodCredentials": "irsa",
        "CaptureNamespace": "netdebug",
        "CaptureServiceAccount": "pcap-writer",
        "ClusterNames": "shop-prod,payments-eu",
    },
}


def _clusters(stack: Stack) -> list[str]:
    return stack.values["ClusterNames"].split(",")


def _of_cluster(logical_id: str, cluster: str) -> str:
    """The logical id Fn::ForEach gives a per-cluster resource (&{Cluster}: letters and digits only)."""
    return logical_id + "".join(c for c in cluster if c.isalnum())


def _all_identity_statements(stack: Stack) -> list[dict[str, Any]]:
    statements = [
        s for role in active_resources(stack, "AWS::IAM::Role") for s in role_statements(stack, role)
    ]
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy_id in active_resources(stack, kind):
            statements += allowed_statements(properties(stack, policy_id)["PolicyDocument"])
    return statements


def _bucket(stack: Stack) -> str:
    return stack.values["ExistingBucketName"] or stack.name_of("CaptureBucket")


def _s3(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if any(a.startswith("s3:") for a in s["Action"])]


@pytest.fixture(params=list(DEPLOYMENTS), scope="module")
def stack(request: pytest.FixtureRequest) -> Stack:
    return deployed(**DEPLOYMENTS[request.param])


def test_no_statement_allows_a_wildcard_action(stack: Stack) -> None:
    actions = {a for s in _all_identity_statements(stack) for a in s["Action"]}

    assert actions
    assert not [a for a in actions if "*" in a or "?" in a]


def test_every_statement_names_its_resources_unless_the_action_has_none(stack: Stack) -> None:
    for statement in _all_identity_statements(stack):
        if any(r == "*" or r.split(":", 5)[-1] in {"", "*"} for r in statement["Resource"]):
            assert set(statement["Action"]) <= RESOURCELESS_ACTIONS, statement


def test_no_role_attaches_a_managed_policy_from_outside_the_template(stack: Stack) -> None:
    for role_id in active_resources(stack, "AWS::IAM::Role"):
        attached = chosen_branch(stack, stack.resources[role_id]["Properties"].get("ManagedPolicyArns", []))
        assert all(referenced(stack, a) in stack.resources for a in attached), role_id


def test_each_function_runs_as_its_own_role_that_only_lambda_can_assume(stack: Stack) -> None:
    roles = {}
    for function_id, role_id in FUNCTION_ROLES.items():
        assert stack.resources[function_id]["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
        trust = properties(stack, role_id)["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
        roles[function_id] = role_id

    assert len(set(roles.values())) == len(roles)


def test_functions_write_logs_only_to_their_own_log_group(stack: Stack) -> None:
    for function_id, role_id in FUNCTION_ROLES.items():
        log_group = properties(stack, function_id)["LoggingConfig"]["LogGroup"]
        log_statements = [s for s in role_statements(stack, role_id) if s["Action"][0].startswith("logs:")]

        assert [r for s in log_statements for r in s["Resource"]] == [
            f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{log_group}:*"
        ]


def test_the_indexer_only_reads_its_clusters_captures(stack: Stack) -> None:
    s3 = _s3(role_statements(stack, "IndexerRole"))
    prefixes = {f"arn:aws:s3:::{_bucket(stack)}/captures/{cluster}/" for cluster in _clusters(stack)}

    assert {a for s in s3 for a in s["Action"]} == {"s3:GetObject"}
    assert {r.removesuffix("*") for s in s3 for r in s["Resource"]} == prefixes


def test_the_capture_pods_only_write_and_confirm_their_node_files_under_their_clusters_prefix(
    stack: Stack,
) -> None:
    for cluster in _clusters(stack):
        policy = properties(stack, _of_cluster("CaptureUploadPolicy", cluster))
        s3 = _s3(allowed_statements(policy["PolicyDocument"]))
        actions = {a for s in s3 for a in s["Action"]}
        node_prefix = f"arn:aws:s3:::{_bucket(stack)}/captures/{cluster}/*/*/"

        assert "s3:PutObject" in actions
        assert actions <= {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"}
        assert {r for s in s3 for r in s["Resource"]} == {
            f"{node_prefix}{name}" for name in ("*.pcap*", "manifest.json", "netstate-*.json")
        }


def test_the_capture_pods_are_explicitly_denied_reports_contexts_and_other_prefixes(stack: Stack) -> None:
    for cluster in _clusters(stack):
        statements = properties(stack, _of_cluster("CaptureUploadPolicy", cluster))["PolicyDocument"]
        denials = [s for s in statements["Statement"] if s["Effect"] == "Deny"]
        capture = f"arn:aws:s3:::{_bucket(stack)}/captures/{cluster}/*/"

        assert {a for s in denials for a in [s["Action"]]} == {"s3:*"}
        assert {r for s in denials for r in s.get("Resource", [])} == {
            f"{capture}report.html",
            f"{capture}context.json.gz",
        }
        assert [s["NotResource"] for s in denials if "NotResource" in s] == [
            f"arn:aws:s3:::{_bucket(stack)}/captures/{cluster}/*"
        ]


def test_the_trigger_writes_only_capture_context_documents(stack: Stack) -> None:
    s3 = _s3(role_statements(stack, "TriggerRole"))

    assert {a for s in s3 for a in s["Action"]} == {"s3:PutObject"}
    assert all(r.endswith("/context.json.gz") for s in s3 for r in s["Resource"])


def test_no_identity_may_delete_objects_or_change_bucket_settings(stack: Stack) -> None:
    s3_actions = {a for s in _all_identity_statements(stack) for a in s["Action"] if a.startswith("s3:")}

    assert s3_actions <= {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}


def test_the_functions_use_only_the_capture_table_and_its_indexes(stack: Stack) -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{stack.name_of('CaptureIndexTable')}"
    for role_id in FUNCTION_ROLES.values():
        dynamo = [s for s in role_statements(stack, role_id) if s["Action"][0].startswith("dynamodb:")]
        assert dynamo, role_id
        assert {r for s in dynamo for r in s["Resource"]} <= {table, f"{table}/index/*"}


def test_the_indexer_writes_items_but_never_deletes_them(stack: Stack) -> None:
    actions = {
        a for s in role_statements(stack, "IndexerRole") for a in s["Action"] if a.startswith("dynamodb:")
    }

    assert "dynamodb:PutItem" in actions
    assert not {a for a in actions if "Delete" in a or "Scan" in a or "Batch" in a}


def test_kms_use_is_granted_only_on_the_given_key_and_only_through_s3(stack: Stack) -> None:
    kms = [s for s in _all_identity_statements(stack) if any(a.startswith("kms:") for a in s["Action"])]

    if not stack.values["KmsKeyArn"]:
        assert kms == []
        return
    assert kms
    for statement in kms:
        assert statement["Resource"] == [KEY]
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"


def test_notifications_are_published_only_to_the_stacks_topic_and_only_when_an_address_is_given(
    stack: Stack,
) -> None:
    sns = [s for s in _all_identity_statements(stack) if any(a.startswith("sns:") for a in s["Action"])]

    if not stack.values["NotificationEmail"]:
        assert sns == []
        return
    topic = stack.physical_id("NotificationTopic")
    assert {r for s in sns for r in s["Resource"]} == {topic}
    assert {a for s in sns for a in s["Action"]} == {"sns:Publish"}


def test_pod_identity_gives_each_clusters_upload_policy_to_that_clusters_service_account_alone(
    stack: Stack,
) -> None:
    if stack.values["PodCredentials"] != "pod-identity":
        assert not [r for r in active_resources(stack, "AWS::IAM::Role") if r.startswith("CapturePodRole")]
        assert not active_resources(stack, "AWS::EKS::PodIdentityAssociation")
        return
    for cluster in _clusters(stack):
        role_id = _of_cluster("CapturePodRole", cluster)
        association = properties(stack, _of_cluster("CapturePodIdentityAssociation", cluster))
        trust = properties(stack, role_id)["AssumeRolePolicyDocument"]["Statement"]

        assert association == {
            "ClusterName": cluster,
            "Namespace": stack.values["CaptureNamespace"],
            "ServiceAccount": stack.values["CaptureServiceAccount"],
            "RoleArn": stack.arn(role_id),
        }
        assert [s["Principal"] for s in trust] == [{"Service": "pods.eks.amazonaws.com"}]
        assert trust[0]["Condition"]["StringEquals"] == {
            "aws:RequestTag/eks-cluster-name": cluster,
            "aws:RequestTag/kubernetes-namespace": stack.values["CaptureNamespace"],
            "aws:RequestTag/kubernetes-service-account": stack.values["CaptureServiceAccount"],
        }


# Verbs that create, change or escalate: the teardown, which only reads and deletes, holds none.
ESCALATING_VERBS = {"create", "update", "patch", "escalate", "bind", "impersonate", "*"}
FUNCTION_GROUPS = {"TriggerRole": TRIGGER_GROUP, "TeardownRole": TEARDOWN_GROUP}


def _entries_of(stack: Stack, role: str) -> list[dict[str, Any]]:
    entries = [properties(stack, e) for e in active_resources(stack, "AWS::EKS::AccessEntry")]
    return [e for e in entries if e["PrincipalArn"] == stack.arn(role)]


def _bound_verbs(stack: Stack, groups: set[str]) -> set[str]:
    """Every verb the cluster manifests for this stack's names grant to ``groups``."""
    documents = cluster_manifests(stack_names(stack.values))
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in documents
        if b["kind"].endswith("Binding")
        and {s["name"] for s in b["subjects"] if s["kind"] == "Group"} & groups
    }
    return {
        verb
        for d in documents
        if (d["kind"], d["metadata"]["name"]) in bound
        for rule in d["rules"]
        for verb in rule["verbs"]
    }


def test_each_function_role_has_its_own_group_and_no_access_entry_has_an_access_policy(stack: Stack) -> None:
    entries = [properties(stack, e) for e in active_resources(stack, "AWS::EKS::AccessEntry")]

    assert sorted((e["ClusterName"], e["PrincipalArn"]) for e in entries) == sorted(
        (cluster, stack.arn(role)) for cluster in _clusters(stack) for role in FUNCTION_GROUPS
    )
    for role, group in FUNCTION_GROUPS.items():
        for entry in _entries_of(stack, role):
            assert entry["KubernetesGroups"] == [group]
            assert "AccessPolicies" not in entry


def test_the_teardowns_groups_grant_nothing_that_creates_changes_or_escalates(stack: Stack) -> None:
    groups = {g for entry in _entries_of(stack, "TeardownRole") for g in entry["KubernetesGroups"]}

    verbs = _bound_verbs(stack, groups)

    assert verbs == {"get", "list", "delete"}
    assert not verbs & ESCALATING_VERBS
    assert "create" in _bound_verbs(stack, {TRIGGER_GROUP}), "the trigger keeps create"


def test_the_indexer_has_no_cluster_access(stack: Stack) -> None:
    entries = [properties(stack, e)["PrincipalArn"] for e in active_resources(stack, "AWS::EKS::AccessEntry")]
    actions = {a for s in role_statements(stack, "IndexerRole") for a in s["Action"]}

    assert stack.arn("IndexerRole") not in entries
    assert not {a for a in actions if a.startswith("eks:")}


def test_only_the_trigger_may_look_up_instances_and_only_describe_them(stack: Stack) -> None:
    describers = {
        role_id
        for role_id in active_resources(stack, "AWS::IAM::Role")
        for statement in role_statements(stack, role_id)
        for action in statement["Action"]
        if action.startswith(("ec2:", "autoscaling:"))
    }
    trigger_ec2 = {
        action
        for statement in role_statements(stack, "TriggerRole")
        for action in statement["Action"]
        if action.startswith("ec2:")
    }

    assert describers == {"TriggerRole"}
    assert trigger_ec2 == {"ec2:DescribeInstances"}
