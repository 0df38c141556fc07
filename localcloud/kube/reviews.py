"""Access reviews (authorization.k8s.io/v1): the API's own answer to "may this user do that?".

A SelfSubjectAccessReview asks for the caller (``kubectl auth can-i``); a SubjectAccessReview asks for
any user and groups (``kubectl auth can-i --as`` asks the first kind while impersonating). Both are
answered by the same authorizer that guards every request, and are never stored.
"""

from __future__ import annotations

from typing import Any

from localcloud.kube.access import User
from localcloud.kube.authorization import Attributes, Authorizer
from localcloud.kube.resources import SELFSUBJECTACCESSREVIEWS, SUBJECTACCESSREVIEWS, ResourceType
from localcloud.kube.status import Invalid, bad_request

ONE_OF = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def _attributes(spec: dict[str, Any], user: User) -> Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        return Attributes(
            user,
            verb=str(resource.get("verb", "")),
            api_group=str(resource.get("group", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            name=str(resource.get("name", "")),
            namespace=str(resource.get("namespace", "")),
        )
    assert isinstance(non_resource, dict)
    return Attributes(user, verb=str(non_resource.get("verb", "")), path=str(non_resource.get("path", "")))


def _check(rtype: ResourceType, spec: Any, needs_subject: bool) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise bad_request("the body of the request must be an object with a spec")
    problems = Invalid()
    given = [
        key for key in ("resourceAttributes", "nonResourceAttributes") if isinstance(spec.get(key), dict)
    ]
    if len(given) != 1:
        problems.invalid_value("spec.resourceAttributes", None, ONE_OF)
    if needs_subject and not spec.get("user") and not spec.get("groups"):
        problems.invalid_value("spec.user", "", "at least one of user or group must be specified")
    problems.raise_if_any(rtype, "")
    return spec


def review(rtype: ResourceType, body: Any, caller: User, authorizer: Authorizer) -> dict[str, Any]:
    """The created review: its spec as given (a SubjectAccessReview's subject) and the decision."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be an object")
    if rtype is SELFSUBJECTACCESSREVIEWS:
        spec = _check(rtype, body.get("spec"), needs_subject=False)
        subject = caller
    elif rtype is SUBJECTACCESSREVIEWS:
        spec = _check(rtype, body.get("spec"), needs_subject=True)
        subject = User(str(spec.get("user", "")), tuple(spec.get("groups") or ()))
    else:
        raise bad_request(f"{rtype.plural} is not an access review")
    decision = authorizer.decide(_attributes(spec, subject))
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": rtype.kind,
        "apiVersion": rtype.api_version,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
