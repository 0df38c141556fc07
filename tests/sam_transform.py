"""template.yaml as CloudFormation receives it: SAM's transform applied, then bound to parameter values.

The transform runs in .venv-sam (aws-sam-translator's pins conflict with the project's), once per test
process; localcloud.template.Stack then resolves intrinsics so tests assert on concrete ARNs and names.
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
REQUIRED = {
    "ClusterName": "shop-prod",
    "CaptureImageUri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64,
}

_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

with open(sys.argv[1]) as handle:
    template = yaml_parse(handle.read())
for resource in template["Resources"].values():  # as sam package would: local code -> S3 object
    for key in ("CodeUri", "ContentUri"):
        if isinstance(resource.get("Properties", {}).get(key), str):
            resource["Properties"][key] = "s3://packaged/" + resource["Properties"][key].strip("/")
print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


@cache
def transformed_template(path: Path = TEMPLATE_PATH) -> str:
    """The transformed template as JSON text (cached: the transform takes seconds)."""
    if not SAM_PYTHON.is_file():
        raise RuntimeError(f"{SAM_PYTHON} is missing: run `make sam-env` first")
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSFORM, str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-west-2"},
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"SAM transform failed:\n{result.stderr}")
    return result.stdout


def deployed(**parameters: str) -> Stack:
    """The transformed template bound to ``parameters`` (plus the required ones), as a stack would be."""
    template: dict[str, Any] = json.loads(transformed_template())
    return Stack(template, STACK_NAME, {**REQUIRED, **parameters})


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
