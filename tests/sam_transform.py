"""template.yaml as CloudFormation receives it: the AWS::LanguageExtensions transform's Fn::ForEach
expanded and SAM's transform applied, then bound to parameter values.

Both transforms run in .venv-sam (aws-sam-translator's and SAM CLI's pins conflict with the project's),
once per list of clusters per test process: Fn::ForEach by SAM CLI's own expander
(scripts/expand_template.py, loops only), SAM by aws-sam-translator.
localcloud.template.Stack then resolves intrinsics so tests assert on concrete ARNs and names.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from localcloud.template import PROJECT_ROOT, TEMPLATE_PATH, Stack

SAM_PYTHON = PROJECT_ROOT / ".venv-sam" / "bin" / "python"
STACK_NAME = "eks-capture"
CLUSTER = "shop-prod"
REQUIRED = {
    "ClusterNames": CLUSTER,
    "CaptureImageUri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64,
}

EXPANDER = PROJECT_ROOT / "scripts" / "expand_template.py"
_EXPAND = f"""
import json, runpy, sys
template = runpy.run_path({str(EXPANDER)!r})["expand"](sys.argv[1], sys.argv[2])
"""

_TRANSFORM = """
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

for resource in template["Resources"].values():  # as sam package would: local code -> S3 object
    for key in ("CodeUri", "ContentUri"):
        if isinstance(resource.get("Properties", {}).get(key), str):
            resource["Properties"][key] = "s3://packaged/" + resource["Properties"][key].strip("/")
template = transform(template, {}, NoManagedPolicies())
"""


def _run_in_sam_env(script: str, path: Path, cluster_names: str) -> str:
    if not SAM_PYTHON.is_file():
        raise RuntimeError(f"{SAM_PYTHON} is missing: run `make sam-env` first")
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", script + "\nprint(json.dumps(template))", str(path), cluster_names],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-west-2"},
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"SAM CLI's expansion or SAM's transform failed:\n{result.stderr}")
    return result.stdout


@cache
def expanded_template(cluster_names: str = CLUSTER, path: Path = TEMPLATE_PATH) -> str:
    """The template with SAM CLI's Fn::ForEach expansion for ``cluster_names`` (comma-separated), as JSON."""
    return _run_in_sam_env(_EXPAND, path, cluster_names)


@cache
def transformed_template(cluster_names: str = CLUSTER, path: Path = TEMPLATE_PATH) -> str:
    """The expanded and SAM-transformed template as JSON text (cached: the transforms take seconds)."""
    return _run_in_sam_env(_EXPAND + _TRANSFORM, path, cluster_names)


def deployed(**parameters: str) -> Stack:
    """The transformed template bound to ``parameters`` (plus the required ones), as a stack would be."""
    bound = {**REQUIRED, **parameters}
    template: dict[str, Any] = json.loads(transformed_template(bound["ClusterNames"]))
    return Stack(template, STACK_NAME, bound)


def active_resources(stack: Stack, kind: str) -> dict[str, dict[str, Any]]:
    """The resources of ``kind`` whose condition holds for the stack's parameters."""
    return {
        logical_id: resource
        for logical_id, resource in stack.resources_of_type(kind).items()
        if "Condition" not in resource or stack.condition(resource["Condition"])
    }


def properties(stack: Stack, logical_id: str) -> dict[str, Any]:
    """A resource's properties with every intrinsic resolved."""
    resolved: dict[str, Any] = stack.resolve(stack.resources[logical_id].get("Properties", {}))
    return resolved


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The Allow statements of a policy document, Action and Resource as lists (IAM takes either form)."""
    return [
        {**statement, "Action": _as_list(statement["Action"]), "Resource": _as_list(statement["Resource"])}
        for statement in _as_list(document["Statement"])
        if statement["Effect"] == "Allow"
    ]


def referenced(stack: Stack, value: Any) -> str | None:
    """The resource a ``Ref`` names (the transform lets it name one through Fn::Sub), else None."""
    if not isinstance(value, dict) or set(value) != {"Ref"}:
        return None
    target = value["Ref"]
    return str(stack.resolve(target) if isinstance(target, dict) else target)


def chosen_branch(stack: Stack, value: Any) -> Any:
    """``value`` with a top-level Fn::If decided by the stack's conditions (AWS::NoValue as an empty list)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        value = when_true if stack.condition(condition) else when_false
    return [] if value == {"Ref": "AWS::NoValue"} else value


def role_statements(stack: Stack, role_id: str) -> list[dict[str, Any]]:
    """Everything a role is allowed: its inline policies, the template's managed policies it attaches and
    the template's policies attached to it."""
    props = properties(stack, role_id)
    documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
    for attached in chosen_branch(stack, stack.resources[role_id]["Properties"].get("ManagedPolicyArns", [])):
        documents.append(properties(stack, str(referenced(stack, attached)))["PolicyDocument"])
    statements = [s for document in documents for s in allowed_statements(document)]
    for policy_id in active_resources(stack, "AWS::IAM::Policy"):
        policy = properties(stack, policy_id)
        if stack.physical_id(role_id) in policy["Roles"]:
            statements += allowed_statements(policy["PolicyDocument"])
    return statements
