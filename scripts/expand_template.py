"""template.yaml with its Fn::ForEach loops expanded by SAM CLI's own expander, as JSON on stdout.

For the tools that cannot read the AWS::LanguageExtensions transform (Checkov) and for the template
tests (tests/sam_transform.py). Runs in .venv-sam, where SAM CLI is installed:
``.venv-sam/bin/python scripts/expand_template.py template.yaml shop-prod,payments-prod``.
Only the loops are expanded: SAM CLI's further pre-resolution of intrinsics would bake parameter
defaults into Fn::If (e.g. the bucket's encryption), which CloudFormation never does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from samcli.lib.cfn_language_extensions.api import create_default_intrinsic_resolver
from samcli.lib.cfn_language_extensions.models import ResolutionMode, TemplateProcessingContext
from samcli.lib.cfn_language_extensions.pipeline import ProcessingPipeline
from samcli.lib.cfn_language_extensions.processors import ForEachProcessor, TemplateParsingProcessor
from samtranslator.yaml_helper import yaml_parse


def expand(path: str, cluster_names: str) -> dict[str, Any]:
    """The template at ``path`` with its loops expanded for ClusterNames=``cluster_names``."""
    with open(path) as handle:
        template = yaml_parse(handle.read())
    context = TemplateProcessingContext(
        fragment=template,
        parameter_values={"ClusterNames": cluster_names.split(",")},
        resolution_mode=ResolutionMode.PARTIAL,
    )
    loops = ForEachProcessor(intrinsic_resolver=create_default_intrinsic_resolver(context))
    pipeline = ProcessingPipeline([TemplateParsingProcessor(), loops])
    expanded: dict[str, Any] = pipeline.process_template(context)
    return expanded


if __name__ == "__main__":
    json.dump(expand(sys.argv[1], sys.argv[2]), sys.stdout, indent=1)
