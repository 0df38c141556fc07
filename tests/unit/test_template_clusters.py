"""One stack, several clusters: the per-cluster resources template.yaml's Fn::ForEach generates, asserted on
the template as CloudFormation receives it (SAM CLI's expansion, SAM's transform, parameters bound) for
one and for three clusters; and the local cloud's expander agrees with SAM CLI's on the whole template."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.template import Stack, TemplateError, expand_for_each, load_template
from tests.fixtures.iam_policies import Decision, decide
from tests.sam_transform import (
    REQUIRED,
    active_resources,
    allowed_statements,
    deployed,
    expanded_template,
    properties,
)

CAPTURE = "cap-20261125T100213Z-0a1b2c3d"
NODE = "ip-10-0-1-23.ec2.internal"
ONE = ("shop-prod",)
THREE = ("shop-prod", "payments-eu", "batch_01")
PER_CLUSTER = {  # logical id prefix -> resource type, one of each per cluster
    "TriggerAccessEntry": "AWS::EKS::AccessEntry",
    "TeardownAccessEntry": "AWS::EKS::AccessEntry",
    "CapturePodIdentityAssociation": "AWS::EKS::PodIdentityAssociation",
    "CapturePodRole": "AWS::IAM::Role",
    "CaptureUploadPolicy": "AWS::IAM::ManagedPolicy",
    "IndexerRule": "AWS::Events::Rule",
}


def _pod_role_statements(stack: Stack, role_id: str) -> list[dict[str, Any]]:
    """Every statement (Allow and Deny) of the policies a capture pod role attaches."""
    statements: list[dict[str, Any]] = []
    for attached in properties(stack, role_id)["ManagedPolicyArns"]:
        (policy_id,) = [
            p for p in active_resources(stack, "AWS::IAM::ManagedPolicy") if stack.physical_id(p) == attached
        ]
        statements += properties(stack, policy_id)["PolicyDocument"]["Statement"]
    return statements


def _may_write_a_manifest_of(stack: Stack, role_id: str, cluster: str) -> bool:
    """Whether the role may put a node manifest of a capture of ``cluster``."""
    key = f"captures/{cluster}/{CAPTURE}/{NODE}/manifest.json"
    resource = f"arn:aws:s3:::{stack.name_of('CaptureBucket')}/{key}"
    return decide(_pod_role_statements(stack, role_id), "s3:PutObject", resource) is Decision.ALLOWED


def _role_actions_on(stack: Stack, role_id: str, action: str) -> set[str]:
    """The resources of ``action`` in the template's policies attached to ``role_id``."""
    return {
        resource
        for policy_id in active_resources(stack, "AWS::IAM::Policy")
        if stack.physical_id(role_id) in properties(stack, policy_id)["Roles"]
        for statement in allowed_statements(properties(stack, policy_id)["PolicyDocument"])
        if action in statement["Action"]
        for resource in statement["Resource"]
    }


@pytest.fixture(params=[ONE, THREE], ids=["one cluster", "three clusters"], scope="module")
def clusters(request: pytest.FixtureRequest) -> tuple[str, ...]:
    names: tuple[str, ...] = request.param
    return names


@pytest.fixture(scope="module")
def stack(clusters: tuple[str, ...]) -> Stack:
    return deployed(ClusterNames=",".join(clusters))


def test_each_cluster_gets_one_of_every_per_cluster_resource(stack: Stack, clusters: tuple[str, ...]) -> None:
    for prefix, kind in PER_CLUSTER.items():
        generated = [lid for lid in active_resources(stack, kind) if lid.startswith(prefix)]
        assert len(generated) == len(clusters), prefix


def test_each_clusters_access_entries_map_the_function_roles_into_that_cluster_only(
    stack: Stack, clusters: tuple[str, ...]
) -> None:
    entries = [properties(stack, e) for e in active_resources(stack, "AWS::EKS::AccessEntry")]
    by_cluster = {c: sorted(e["PrincipalArn"] for e in entries if e["ClusterName"] == c) for c in clusters}

    assert len(entries) == 2 * len(clusters)
    assert by_cluster == {c: sorted([stack.arn("TeardownRole"), stack.arn("TriggerRole")]) for c in clusters}


def test_each_clusters_pod_identity_role_is_assumable_only_from_that_cluster_and_writes_only_its_prefix(
    stack: Stack, clusters: tuple[str, ...]
) -> None:
    associations = [properties(stack, a) for a in active_resources(stack, "AWS::EKS::PodIdentityAssociation")]
    roles = {stack.arn(r): r for r in active_resources(stack, "AWS::IAM::Role")}

    assert sorted(a["ClusterName"] for a in associations) == sorted(clusters)
    for association in associations:
        cluster = association["ClusterName"]
        role_id = roles[association["RoleArn"]]
        (trust,) = properties(stack, role_id)["AssumeRolePolicyDocument"]["Statement"]

        assert trust["Condition"]["StringEquals"]["aws:RequestTag/eks-cluster-name"] == cluster
        assert [c for c in (*clusters, "other") if _may_write_a_manifest_of(stack, role_id, c)] == [cluster]


def test_no_pod_role_may_write_another_clusters_prefix(stack: Stack, clusters: tuple[str, ...]) -> None:
    pod_roles = [r for r in active_resources(stack, "AWS::IAM::Role") if r.startswith("CapturePodRole")]
    writers = {
        cluster: [r for r in pod_roles if _may_write_a_manifest_of(stack, r, cluster)] for cluster in clusters
    }

    assert all(len(roles) == 1 for roles in writers.values())
    assert len({roles[0] for roles in writers.values()}) == len(clusters)


def test_the_functions_reach_exactly_the_listed_clusters(stack: Stack, clusters: tuple[str, ...]) -> None:
    arns = {f"arn:aws:eks:us-west-2:123456789012:cluster/{c}" for c in clusters}
    bucket = stack.name_of("CaptureBucket")

    assert _role_actions_on(stack, "TriggerRole", "eks:DescribeCluster") == arns
    assert _role_actions_on(stack, "TeardownRole", "eks:DescribeCluster") == arns
    assert _role_actions_on(stack, "IndexerRole", "eks:DescribeCluster") == set()
    assert _role_actions_on(stack, "IndexerRole", "s3:GetObject") == {
        f"arn:aws:s3:::{bucket}/captures/{c}/*" for c in clusters
    }


def test_one_indexer_rule_per_cluster_hears_that_clusters_prefix(
    stack: Stack, clusters: tuple[str, ...]
) -> None:
    rules = [
        properties(stack, r)
        for r in active_resources(stack, "AWS::Events::Rule")
        if stack.resources[r]["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
    ]

    assert sorted(
        p for r in rules for k in r["EventPattern"]["detail"]["object"]["key"] for p in k.values()
    ) == (sorted(f"captures/{c}/" for c in clusters))
    assert all(r["Targets"][0]["Arn"] == stack.arn("IndexerFunction") for r in rules)


def test_generated_names_are_unique(stack: Stack, clusters: tuple[str, ...]) -> None:
    rule_names = [stack.name_of(r) for r in active_resources(stack, "AWS::Events::Rule")]
    policy_names = [
        (role, properties(stack, p)["PolicyName"])
        for p in active_resources(stack, "AWS::IAM::Policy")
        for role in properties(stack, p)["Roles"]
    ]

    assert len(set(rule_names)) == len(rule_names)
    assert len(set(policy_names)) == len(policy_names)
    assert all(any(name.endswith(f"-{c}") for _, name in policy_names) for c in clusters)


def test_the_functions_are_told_every_cluster_and_the_first_as_default(
    stack: Stack, clusters: tuple[str, ...]
) -> None:
    variables = properties(stack, "TriggerFunction")["Environment"]["Variables"]

    assert variables["CLUSTER_NAMES"].split(",") == list(clusters)
    assert variables["DEFAULT_CLUSTER"] == clusters[0]


def test_each_cluster_has_its_pod_role_and_upload_policy_outputs(
    stack: Stack, clusters: tuple[str, ...]
) -> None:
    outputs = {name: stack.resolve(o["Value"]) for name, o in stack.template["Outputs"].items()}
    pod_roles = {v for k, v in outputs.items() if k.startswith("CapturePodRoleArn")}
    policies = {v for k, v in outputs.items() if k.startswith("CaptureUploadPolicyArn")}

    assert pod_roles == {
        stack.arn(r) for r in active_resources(stack, "AWS::IAM::Role") if r.startswith("CapturePod")
    }
    assert len(policies) == len(clusters)


@pytest.mark.parametrize("clusters", [ONE, ("shop-prod", "payments-eu"), THREE])
def test_the_local_clouds_expansion_of_the_template_is_sam_clis(clusters: tuple[str, ...]) -> None:
    names = ",".join(clusters)
    local = Stack(load_template(), "eks-capture", {**REQUIRED, "ClusterNames": names}).template
    sam_cli = json.loads(expanded_template(names))

    for section in ("Conditions", "Resources", "Outputs"):
        assert json.loads(json.dumps(local[section])) == sam_cli[section], section


@pytest.mark.parametrize("names", [None, "", "shop-prod,,payments-eu", "shop-prod,"])
def test_a_stack_without_a_cluster_or_with_an_empty_name_is_refused(names: str | None) -> None:
    parameters = {k: v for k, v in REQUIRED.items() if k != "ClusterNames"}
    if names is not None:
        parameters["ClusterNames"] = names

    with pytest.raises(TemplateError, match="ClusterNames names at least one EKS cluster"):
        Stack(load_template(), "eks-capture", parameters)


def test_cluster_names_that_differ_only_in_punctuation_are_refused_by_both_expanders() -> None:
    with pytest.raises(TemplateError, match="shopprod"):
        Stack(load_template(), "eks-capture", {**REQUIRED, "ClusterNames": "shop-prod,shop_prod"})
    with pytest.raises(RuntimeError, match="shopprod"):
        expanded_template("shop-prod,shop_prod")


LOOP = [
    "Name",
    {"Ref": "Names"},
    {"Thing&{Name}": {"Properties": {"Label": "${Name}", "Value": {"Ref": "Name"}}}},
]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], {}),
        (["a-1"], {"Thinga1": {"Properties": {"Label": "a-1", "Value": "a-1"}}}),
        (
            ["a", "b.c"],
            {
                "Thinga": {"Properties": {"Label": "a", "Value": "a"}},
                "Thingbc": {"Properties": {"Label": "b.c", "Value": "b.c"}},
            },
        ),
    ],
)
def test_a_loop_gives_one_entry_per_item_with_its_placeholders_replaced(
    names: list[str], expected: dict[str, Any]
) -> None:
    template = {"Resources": {"Kept": {"Type": "X"}, "Fn::ForEach::Things": LOOP}}

    assert expand_for_each(template, {"Names": names})["Resources"] == {"Kept": {"Type": "X"}, **expected}


def test_a_loop_inside_properties_and_a_nested_loop_expand_too() -> None:
    template = {
        "Resources": {
            "Fn::ForEach::Outer": [
                "A",
                ["x", "y"],
                {
                    "R${A}": {
                        "Properties": {"Fn::ForEach::Inner": ["B", ["1", "2"], {"P${A}${B}": "${A}-${B}"}]}
                    }
                },
            ]
        }
    }

    assert expand_for_each(template, {})["Resources"] == {
        "Rx": {"Properties": {"Px1": "x-1", "Px2": "x-2"}},
        "Ry": {"Properties": {"Py1": "y-1", "Py2": "y-2"}},
    }


@pytest.mark.parametrize(
    ("loop", "lists", "complaint"),
    [
        (LOOP, {"Names": ["a", "a"]}, "same keys"),
        (["Name", {"Ref": "Other"}, {"T${Name}": {}}], {"Names": ["a"]}, "not a CommaDelimitedList"),
        (["Name", "a,b", {"T${Name}": {}}], {}, "must be a list"),
        (["Name", ["a"], {"Fixed": {}}], {}, "do not contain"),
        (["Name", ["a"]], {}, "must be"),
    ],
)
def test_a_malformed_or_clashing_loop_is_refused(
    loop: Any, lists: dict[str, list[str]], complaint: str
) -> None:
    with pytest.raises(TemplateError, match=complaint):
        expand_for_each({"Resources": {"Fn::ForEach::Things": loop}}, lists)
