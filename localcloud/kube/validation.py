"""Create and update validation with the API server's field paths and messages (422 Invalid)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from localcloud.kube.resources import (
    DAEMONSETS,
    ENDPOINTSLICES,
    JOBS,
    NAMESPACES,
    PODS,
    SERVICES,
    ResourceType,
)
from localcloud.kube.selectors import labels_match, structured_selector
from localcloud.kube.status import Invalid

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(f"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_WHY = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_WHY = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_WHY = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_WHY = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_WHY = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _name_rule(rtype: ResourceType) -> tuple[re.Pattern[str], str, int]:
    if rtype in (NAMESPACES,):
        return _DNS1123_LABEL, LABEL_WHY, 63
    if rtype is SERVICES:
        return _DNS1035_LABEL, DNS1035_WHY, 63
    if rtype is JOBS:
        return _DNS1123_SUBDOMAIN, SUBDOMAIN_WHY, 63
    return _DNS1123_SUBDOMAIN, SUBDOMAIN_WHY, 253


def check_name(rtype: ResourceType, name: str, problems: Invalid, path: str = "metadata.name") -> None:
    if rtype.group == "rbac.authorization.k8s.io":  # path segment names: "system:basic-user" is valid
        if name in (".", ".."):
            problems.invalid_value(path, name, f"may not be '{name}'")
        for bad in ("/", "%"):
            if bad in name:
                problems.invalid_value(path, name, f"may not contain '{bad}'")
        return
    pattern, why, limit = _name_rule(rtype)
    if len(name) > limit:
        problems.invalid_value(path, name, f"must be no more than {limit} characters")
    if not pattern.match(name):
        problems.invalid_value(path, name, why)


def check_labels(labels: Any, problems: Invalid, path: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        problems.invalid_value(path, labels, "must be a map of strings")
        return
    for key, value in labels.items():
        prefix, slash, name = str(key).rpartition("/")
        if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
            problems.invalid_value(path, key, QUALIFIED_WHY)
        elif slash and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
            problems.invalid_value(path, key, "prefix part " + SUBDOMAIN_WHY)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.invalid_value(f"{path}", value, LABEL_VALUE_WHY)


def check_metadata(rtype: ResourceType, obj: dict[str, Any], problems: Invalid) -> None:
    metadata = obj["metadata"]
    check_name(rtype, metadata["name"], problems)
    check_labels(metadata.get("labels"), problems, "metadata.labels")
    annotations = metadata.get("annotations") or {}
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        problems.add("FieldValueTooLong", "metadata.annotations", "Too long: must have at most 262144 bytes")


def check_pod_spec(spec: Any, problems: Invalid, path: str, restart_policies: tuple[str, ...]) -> None:
    if not isinstance(spec, Mapping):
        problems.required(path)
        return
    volumes = {}
    for index, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name", "")
        if not name:
            problems.required(f"{path}.volumes[{index}].name")
        elif name in volumes:
            problems.duplicate(f"{path}.volumes[{index}].name", name)
        elif not _DNS1123_LABEL.match(name):
            problems.invalid_value(f"{path}.volumes[{index}].name", name, LABEL_WHY)
        volumes[name] = volume
    containers = spec.get("containers")
    if not containers:
        problems.required(f"{path}.containers")
    for group in ("initContainers", "containers"):
        seen: set[str] = set()
        for index, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{index}]"
            name = container.get("name", "")
            if not name:
                problems.required(f"{where}.name")
            elif name in seen:
                problems.duplicate(f"{where}.name", name)
            elif not _DNS1123_LABEL.match(name):
                problems.invalid_value(f"{where}.name", name, LABEL_WHY)
            seen.add(name)
            if not container.get("image"):
                problems.required(f"{where}.image")
            for mount_index, mount in enumerate(container.get("volumeMounts") or []):
                if mount.get("name") not in volumes:
                    problems.not_found(f"{where}.volumeMounts[{mount_index}].name", str(mount.get("name")))
                if not mount.get("mountPath"):
                    problems.required(f"{where}.volumeMounts[{mount_index}].mountPath")
            for arg_index, arg in enumerate(container.get("args") or []):
                if not isinstance(arg, str):
                    problems.invalid_value(f"{where}.args[{arg_index}]", arg, "must be a string")
    policy = spec.get("restartPolicy", "Always")
    if policy not in restart_policies:
        problems.unsupported(f"{path}.restartPolicy", policy, restart_policies)
    check_labels(spec.get("nodeSelector"), problems, f"{path}.nodeSelector")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline < 1):
        problems.invalid_value(
            f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"
        )
    for index, toleration in enumerate(spec.get("tolerations") or []):
        operator = toleration.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            problems.unsupported(f"{path}.tolerations[{index}].operator", operator, ("Equal", "Exists"))
        if operator == "Exists" and toleration.get("value"):
            problems.invalid_value(
                f"{path}.tolerations[{index}].operator",
                toleration["value"],
                "value must be empty when `operator` is 'Exists'",
            )


def _check_template_selector(obj: dict[str, Any], problems: Invalid) -> None:
    selector = obj["spec"].get("selector")
    labels = obj["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
    if not selector:
        problems.required("spec.selector")
    elif not labels_match(structured_selector(selector), labels):
        problems.invalid_value(
            "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
        )


def validate(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid listing every problem of ``obj`` (already defaulted) for its kind."""
    problems = Invalid()
    check_metadata(rtype, obj, problems)
    spec = obj.get("spec") or {}
    if rtype is PODS:
        check_pod_spec(obj.get("spec"), problems, "spec", RESTART_POLICIES)
    elif rtype is JOBS:
        template = spec.get("template") or {}
        check_labels(template.get("metadata", {}).get("labels"), problems, "spec.template.metadata.labels")
        check_pod_spec(template.get("spec"), problems, "spec.template.spec", ("OnFailure", "Never"))
        for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit", "completions"):
            value = spec.get(field)
            if value is not None and (
                not isinstance(value, int) or value < (1 if field == "activeDeadlineSeconds" else 0)
            ):
                problems.invalid_value(f"spec.{field}", value, "must be greater than or equal to 0")
    elif rtype is DAEMONSETS:
        template = spec.get("template") or {}
        check_labels(template.get("metadata", {}).get("labels"), problems, "spec.template.metadata.labels")
        check_pod_spec(template.get("spec"), problems, "spec.template.spec", ("Always",))
        _check_template_selector(obj, problems)
    elif rtype is SERVICES:
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None":
            problems.required("spec.ports")
        for index, port in enumerate(ports):
            number = port.get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                problems.invalid_value(
                    f"spec.ports[{index}].port", number, "must be between 1 and 65535, inclusive"
                )
        check_labels(spec.get("selector"), problems, "spec.selector")
    elif rtype is ENDPOINTSLICES:
        _check_endpoint_slice(obj, problems)
    problems.raise_if_any(rtype, obj["metadata"]["name"])


ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


def _check_endpoint_slice(obj: dict[str, Any], problems: Invalid) -> None:
    """pkg/apis/discovery/validation: a supported address type, and 1 to 100 addresses per endpoint."""
    kind = obj.get("addressType")
    if not kind:
        problems.required("addressType")
    elif kind not in ADDRESS_TYPES:
        problems.unsupported("addressType", kind, ADDRESS_TYPES)
    for index, endpoint in enumerate(obj.get("endpoints") or []):
        addresses = endpoint.get("addresses") or []
        if not addresses:
            problems.required(f"endpoints[{index}].addresses", "must contain at least 1 address")
        elif len(addresses) > 100:
            problems.add(
                "FieldValueTooMany", f"endpoints[{index}].addresses", "Too many: must have at most 100 items"
            )
