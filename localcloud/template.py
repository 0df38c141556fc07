"""Reads template.yaml the way CloudFormation would, so the local cloud runs the wiring we deploy.

Only what the template uses is resolved: Ref (parameters, pseudo parameters, resources' physical
names; a CommaDelimitedList as a list), Fn::Sub, Fn::GetAtt (Arn/Name), Fn::Join, Fn::Select,
Fn::If/Fn::Equals over parameters, the Rules' assertions (Fn::Not, Fn::Contains, Fn::And, Fn::Or),
parameters' AllowedValues and AllowedPattern (a value outside them refuses the stack), and the
AWS::LanguageExtensions transform's Fn::ForEach over a list or a CommaDelimitedList parameter.
Anything else raises, so a template change the local cloud cannot follow fails loudly instead of
silently.

Fn::ForEach is expanded here rather than by SAM CLI's expander (samcli.lib.cfn_language_extensions)
because the local cloud runs in the project's environment, where SAM CLI cannot be installed (its
pins conflict with the project's); tests/unit/test_template_clusters.py checks that both expand
template.yaml to the same conditions, resources and outputs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from localcloud.aws import ACCOUNT_ID, REGION

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve, or is wired wrongly."""


class _CfnLoader(yaml.CSafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !Sub ...) into their long form; libyaml's
    parser (the same data as the pure-Python one, 7 times faster: every stack fixture reads the template)."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsics in their long form: a copy of the file's parse, each caller's
    own to change (every stack fixture reads the template; copying it costs a tenth of parsing it)."""
    status = path.stat()
    return copy.deepcopy(_parsed(path.resolve(), status.st_mtime_ns, status.st_size))


@cache
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """The file's parse, once per version of the file (its modification time and size)."""
    with path.open() as handle:
        loaded = yaml.load(handle, Loader=_CfnLoader)
    if not isinstance(loaded, dict):
        raise TemplateError(f"{path} is not a mapping")
    return loaded


def physical_name(stack: str, logical_id: str) -> str:
    """A deterministic, S3-safe physical name, like CloudFormation's ``<stack>-<logical>-<suffix>``."""
    return f"{stack}-{logical_id}".lower()[:63]


FOR_EACH = "Fn::ForEach::"
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def _substitute(fragment: Any, identifier: str, value: str) -> Any:
    """``fragment`` with ``${identifier}``, ``&{identifier}`` (alphanumerics only) and its Ref replaced."""
    if isinstance(fragment, str):
        stripped = _NOT_ALPHANUMERIC.sub("", value)
        return fragment.replace(f"${{{identifier}}}", value).replace(f"&{{{identifier}}}", stripped)
    if isinstance(fragment, list):
        return [_substitute(item, identifier, value) for item in fragment]
    if isinstance(fragment, dict):
        if fragment == {"Ref": identifier}:
            return value
        return {
            _substitute(k, identifier, value): _substitute(v, identifier, value) for k, v in fragment.items()
        }
    return fragment


def _expand_loops(section: dict[str, Any], lists: dict[str, list[str]]) -> dict[str, Any]:
    """One mapping's ``Fn::ForEach::<loop>`` keys replaced by the entries each loop generates."""
    expanded: dict[str, Any] = {}
    for key, value in section.items():
        generated = _expand_loop(key, value, lists) if key.startswith(FOR_EACH) else {key: value}
        clashes = sorted(set(generated) & set(expanded))
        if clashes:
            raise TemplateError(f"{key} generates keys that already exist: {clashes}")
        expanded.update(generated)
    return expanded


def _expand_loop(key: str, loop: Any, lists: dict[str, list[str]]) -> dict[str, Any]:
    """The entries one ``Fn::ForEach::<loop>`` generates: its fragment once per item of its collection."""
    if not (
        isinstance(loop, list) and len(loop) == 3 and isinstance(loop[0], str) and isinstance(loop[2], dict)
    ):
        raise TemplateError(f"{key} must be [identifier, collection, {{key: fragment}}]")
    identifier, collection, body = loop
    if isinstance(collection, dict) and set(collection) == {"Ref"}:
        if collection["Ref"] not in lists:
            raise TemplateError(f"{key}: {collection['Ref']} is not a CommaDelimitedList parameter")
        collection = lists[collection["Ref"]]
    if not isinstance(collection, list):
        raise TemplateError(f"{key}: the collection must be a list or a Ref to a CommaDelimitedList")
    placeholders = (f"${{{identifier}}}", f"&{{{identifier}}}")
    unnamed = [k for k in body if not k.startswith(FOR_EACH) and not any(p in k for p in placeholders)]
    if unnamed:
        raise TemplateError(f"{key}: output keys {unnamed} do not contain {' or '.join(placeholders)}")
    expanded: dict[str, Any] = {}
    for item in collection:
        generated = _expand_loops(_substitute(body, identifier, str(item)), lists)
        clashes = sorted(set(generated) & set(expanded))
        if clashes:
            raise TemplateError(f"{key} generates the same keys for several items: {clashes}")
        expanded.update(generated)
    return expanded


def expand_for_each(template: dict[str, Any], lists: dict[str, list[str]]) -> dict[str, Any]:
    """The template with its Fn::ForEach loops expanded, as the AWS::LanguageExtensions transform does:
    in Conditions, Outputs, Resources and each resource's Properties; ``lists`` are the values of the
    CommaDelimitedList parameters a collection may Ref."""
    expanded = dict(template)
    for section in ("Conditions", "Outputs"):
        if section in template:
            expanded[section] = _expand_loops(template[section], lists)
    if "Resources" in template:
        resources = _expand_loops(template["Resources"], lists)
        expanded["Resources"] = {
            logical_id: {**resource, "Properties": _expand_loops(resource["Properties"], lists)}
            if isinstance(resource.get("Properties"), dict)
            else resource
            for logical_id, resource in resources.items()
        }
    return expanded


NO_VALUE = object()  # what ``Ref AWS::NoValue`` resolves to: the property or list item disappears

_NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
}


@dataclass
class Stack:
    """A template bound to parameter values and a stack name: resolves intrinsics to concrete values."""

    template: dict[str, Any]
    name: str
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = REGION
    account_id: str = ACCOUNT_ID
    base_dir: Path = PROJECT_ROOT

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {sorted(unknown)}")
        values: dict[str, str] = {}
        for key, spec in declared.items():
            if key in self.parameters:
                values[key] = str(self.parameters[key])
            elif "Default" in spec:
                values[key] = str(spec["Default"])
            else:
                raise TemplateError(f"parameter {key} has no default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed is not None and values[key] not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {key}={values[key]!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            items = values[key].split(",") if spec.get("Type") == "CommaDelimitedList" else [values[key]]
            if pattern is not None and not all(re.fullmatch(pattern, item) for item in items):
                reason = spec.get("ConstraintDescription", f"must match pattern {pattern}")
                raise TemplateError(f"parameter {key}={values[key]!r}: {reason}")
        self.values = values
        self._check_rules()
        lists = {
            key: self._list(key) for key, spec in declared.items() if spec.get("Type") == "CommaDelimitedList"
        }
        self.template = expand_for_each(self.template, lists)

    def _check_rules(self) -> None:
        """The template's Rules, as CloudFormation applies them: a failed assertion refuses the stack."""
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions", []):
                if not self.resolve(assertion["Assert"]):
                    raise TemplateError(f"rule {name}: {assertion.get('AssertDescription', 'not met')}")

    def _list(self, parameter: str) -> list[str]:
        """A CommaDelimitedList parameter's items, as CloudFormation splits them."""
        return self.values[parameter].split(",")

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template.get("Resources", {}))

    def resources_of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res.get("Type") == kind}

    def name_of(self, logical_id: str) -> str:
        """The resource's name: the one its properties give, else a generated one, as CloudFormation does."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"reference to unknown resource {logical_id}")
        name_property = _NAME_PROPERTIES.get(resource["Type"])
        given = resource.get("Properties", {}).get(name_property) if name_property else None
        return str(self.resolve(given)) if given is not None else physical_name(self.name, logical_id)

    def physical_id(self, logical_id: str) -> str:
        """What ``Ref`` gives for a resource: its name (bucket, table, queue, bus) or its ARN (topic)."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"Ref to unknown resource {logical_id}")
        name = self.name_of(logical_id)
        if resource["Type"] == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{self.account_id}:{name}"
        return name

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.name_of(logical_id)
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{self.region}:{self.account_id}:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{self.region}:{self.account_id}:{name}",
            "AWS::Events::EventBus": f"arn:aws:events:{self.region}:{self.account_id}:event-bus/{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account_id}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}:*",
            "AWS::Events::Rule": f"arn:aws:events:{self.region}:{self.account_id}:rule/{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
        }
        if kind not in arns:
            raise TemplateError(f"GetAtt {logical_id}.Arn: the local cloud does not model {kind}")
        return arns[kind]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.values:
            if self.template["Parameters"][name].get("Type") == "CommaDelimitedList":
                return self._list(name)
            return self.values[name]
        return self.physical_id(name)

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in {"Name", "QueueName", "TopicName"}:
            return self.name_of(logical_id)
        if attribute == "RepositoryUri":  # ECR's generated repository names are lower case
            registry = f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"
            return f"{registry}/{self.name_of(logical_id).lower()}"
        raise TemplateError(f"GetAtt {logical_id}.{attribute} is not modelled by the local cloud")

    def _sub(self, value: Any) -> str:
        text, local = (value[0], value[1]) if isinstance(value, list) else (value, {})
        resolved_locals = {k: self.resolve(v) for k, v in local.items()}

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in resolved_locals:
                return str(resolved_locals[token])
            if "." in token:
                logical_id, attribute = token.split(".", 1)
                return self._get_att(logical_id, attribute)
            return str(self._ref(token))

        return re.sub(r"\$\{([^}!]+)\}", replace, str(text))

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def output(self, name: str) -> str:
        """A stack output, as ``aws cloudformation describe-stacks`` would give it."""
        return str(self.resolve(self.template["Outputs"][name]["Value"]))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its concrete result."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":  # the transform lets Ref take a Fn::Sub naming a resource of a loop
                return self._ref(self.resolve(arg) if isinstance(arg, dict) else arg)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::GetAtt":
                parts = self.resolve(arg) if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(parts[0], parts[1])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if key == "Fn::Contains":  # Rules only: whether the list holds the string
                return str(self.resolve(arg[1])) in [str(v) for v in self.resolve(arg[0])]
            if key == "Fn::EachMemberIn":  # Rules only: whether every item of the first list is in the second
                within = [str(v) for v in self.resolve(arg[1])]
                return all(str(v) in within for v in self.resolve(arg[0]))
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(condition) for condition in arg)
            if key == "Fn::Or":
                return any(self.resolve(condition) for condition in arg)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not modelled by the local cloud")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}
