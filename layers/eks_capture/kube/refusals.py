"""Who in the cluster said no, read from the API's own answer: RBAC, an admission plugin or webhook,
validation. A 403 is RBAC only when the message says a user "cannot <verb> resource"; every other 403
comes from admission (Pod Security, ResourceQuota, ServiceAccount, a namespace being deleted, a webhook)."""

from __future__ import annotations

import json
import re

from kubernetes.client.exceptions import ApiException

_RBAC = re.compile(r'cannot [a-z]+ resource "')
# The words of each admission plugin, in the messages they return.
_ADMISSION = (
    ("admission webhook ", "an admission webhook"),
    ("violates PodSecurity", "Pod Security admission"),
    ("exceeded quota:", "ResourceQuota admission"),
    ("failed quota:", "ResourceQuota admission"),
    ("error looking up service account", "ServiceAccount admission"),
    ("because it is being terminated", "NamespaceLifecycle admission"),
)


def api_message(error: ApiException) -> str:
    """The ``message`` of the Status the API answered with (the HTTP reason when there is none)."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


def refused_by(status: int, message: str) -> str:
    """Who refused a request, in words: ``RBAC``, ``Pod Security admission``, ``an admission webhook``..."""
    if status == 403 and _RBAC.search(message):
        return "RBAC"
    for words, who in _ADMISSION:
        if words in message:
            return who
    if status == 403:
        return "admission"
    if status == 422:
        return "validation"
    return "the API server"
