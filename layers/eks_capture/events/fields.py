"""Validation of the values a capture is made of (filter, duration, node, instance, cluster), shared by
events and alarm tags so both refuse the same things with the same words."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from eks_capture.kube.names import dns1123_label_error, dns1123_subdomain_error

MAX_FILTER_LENGTH = 1024
ABSOLUTE_MAX_DURATION_SECONDS = 24 * 3600
MIN_DURATION_SECONDS = 10
MIN_SNAPLEN = 64
MAX_SNAPLEN = 262144
MAX_REASON_LENGTH = 256

# BPF needs letters, digits, spaces, address punctuation (. : /), brackets and its operators
# (! = < > & | + - * % ^). The filter reaches tcpdump as one argv element, never through a shell,
# so & | < > are safe; quotes, ; ` $ \ # { } and control characters have no meaning in BPF and are refused.
FILTER_PATTERN = r"^[A-Za-z0-9 .:/_\-!=<>()\[\]&|+*%^]*$"
INSTANCE_ID_PATTERN = r"^i-[0-9a-f]{8}([0-9a-f]{9})?$"
CLUSTER_PATTERN = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
SERVICE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z]([-a-z0-9]*[a-z0-9])?$"
NODE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_FILTER_CHARS = re.compile(FILTER_PATTERN)
_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN)
_CLUSTER = re.compile(CLUSTER_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_bpf_filter(value: str) -> str:
    """A tcpdump filter, stripped, when it is short and made of BPF characters only; ValueError otherwise."""
    text = value.strip()
    if len(text) > MAX_FILTER_LENGTH:
        raise ValueError(f"filter must be at most {MAX_FILTER_LENGTH} characters")
    if not _FILTER_CHARS.match(text):
        bad = sorted({char for char in text if not _FILTER_CHARS.match(char)})
        shown = " ".join(repr(char) for char in bad)
        raise ValueError(f"filter may hold only letters, digits, spaces and BPF operators; refused: {shown}")
    if text.startswith("-"):
        raise ValueError("filter must not start with '-' (it would read as a command-line option)")
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        raise ValueError("filter has unbalanced brackets")
    return text


def check_instance_id(value: str) -> str:
    """An EC2 instance id (``i-`` and 8 or 17 hex digits)."""
    if not _INSTANCE_ID.match(value):
        raise ValueError("must be an EC2 instance id: i- followed by 8 or 17 lowercase hex digits")
    return value


def check_node_name(value: str) -> str:
    """A Kubernetes node name (DNS-1123 subdomain)."""
    if problem := dns1123_subdomain_error(value):
        raise ValueError(f"node name {problem}")
    return value


def check_service(value: str) -> str:
    """A Service as ``namespace/name`` (a DNS-1123 label, then a DNS-1035 label: starts with a letter)."""
    namespace, slash, name = value.partition("/")
    if not slash:
        raise ValueError("must be namespace/name, e.g. payments/checkout")
    if problem := dns1123_label_error(namespace):
        raise ValueError(f"namespace {problem}")
    if problem := dns1123_label_error(name):
        raise ValueError(f"service name {problem}")
    if not name[0].isalpha():
        raise ValueError("service name must start with a letter")
    return value


def check_cluster_name(value: str) -> str:
    """An EKS cluster name (1-100 letters, digits, '-' and '_', starting alphanumeric)."""
    if not _CLUSTER.match(value):
        raise ValueError(
            "must be an EKS cluster name: 1-100 letters, digits, '-' or '_', starting alphanumeric"
        )
    return value


def check_reason(value: str) -> str:
    """Free text that goes into an annotation and logs: one line, no control characters."""
    text = value.strip()
    if not text:
        raise ValueError("must not be blank")
    if _CONTROL.search(text):
        raise ValueError("must be one line without control characters")
    return text


def check_duration(value: int, maximum: int) -> int:
    """A capture duration in seconds within [MIN_DURATION_SECONDS, maximum]."""
    if not MIN_DURATION_SECONDS <= value <= maximum:
        raise ValueError(f"duration must be between {MIN_DURATION_SECONDS} and {maximum} seconds")
    return value


# The JSON schema states the same rules for callers; the validators give the clearer messages.
BpfFilter = Annotated[
    str,
    AfterValidator(check_bpf_filter),
    Field(json_schema_extra={"pattern": FILTER_PATTERN, "maxLength": MAX_FILTER_LENGTH}),
]
InstanceId = Annotated[
    str, AfterValidator(check_instance_id), Field(json_schema_extra={"pattern": INSTANCE_ID_PATTERN})
]
NodeName = Annotated[
    str,
    AfterValidator(check_node_name),
    Field(json_schema_extra={"pattern": NODE_NAME_PATTERN, "maxLength": 253}),
]
ClusterName = Annotated[
    str, AfterValidator(check_cluster_name), Field(json_schema_extra={"pattern": CLUSTER_PATTERN})
]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH), AfterValidator(check_reason)]
#: Who asked (a user or role name, as the CLI fills it in); free text for the audit trail.
RequestedBy = Annotated[str, Field(min_length=1, max_length=128)]
Snaplen = Annotated[int, Field(ge=MIN_SNAPLEN, le=MAX_SNAPLEN)]
ServiceRef = Annotated[
    str,
    AfterValidator(check_service),
    Field(json_schema_extra={"pattern": SERVICE_PATTERN, "maxLength": 127}),
]
