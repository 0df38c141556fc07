"""Kubernetes' own syntax rules for names, labels and quantities, so bad input fails before any API call."""

from __future__ import annotations

import hashlib
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_QUANTITY_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def dns1123_label_error(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 label (namespace, container name), or None when it is one."""
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be at most {DNS1123_LABEL_MAX} characters"
    if not _DNS1123_LABEL.match(value):
        return "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 subdomain (node, Job, service account name), or None."""
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"must be at most {DNS1123_SUBDOMAIN_MAX} characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return "must be lowercase letters, digits, '-' and '.', each part starting and ending alphanumeric"
    return None


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a label key (``[prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "label key prefix must not be empty"
    if prefix and (problem := dns1123_subdomain_error(prefix)):
        return f"label key prefix {problem}"
    if len(name) > LABEL_VALUE_MAX or not _QUALIFIED_NAME.match(name):
        return (
            "label key name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a label value (empty, or up to 63 qualified-name characters), or None."""
    if value == "":
        return None
    if len(value) > LABEL_VALUE_MAX or not _QUALIFIED_NAME.match(value):
        return "label value must be at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
    return None


def quantity_bytes(quantity: str) -> int:
    """Bytes of a whole-number Kubernetes quantity (``2Gi``, ``500M``, ``1048576``); ValueError otherwise."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError("must be a whole number with an optional suffix Ki, Mi, Gi, Ti, k, M, G or T")
    return int(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


def short_digest(text: str, length: int = 8) -> str:
    """A short stable hex digest, to keep truncated names unique."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit_dns1123_label(text: str, max_length: int = DNS1123_LABEL_MAX) -> str:
    """``text`` as a DNS-1123 label of at most ``max_length``; a digest keeps shortened names distinct."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if len(slug) <= max_length and slug == text:
        return slug
    digest = short_digest(text)
    head = slug[: max_length - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def fit_label_value(text: str) -> str:
    """``text`` when it is a valid label value, else a shortened valid value with a digest suffix."""
    if label_value_error(text) is None:
        return text
    digest = short_digest(text)
    head = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[: LABEL_VALUE_MAX - len(digest) - 1]
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", head)
    return f"{head}-{digest}" if head else digest
