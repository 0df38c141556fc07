"""Impersonation (``kubectl --as``/``--as-group``): act as another user after an ``impersonate`` check.

As the API server's impersonation filter does: each requested user and group is authorized as the verb
``impersonate`` on ``users``/``groups`` (a ``system:serviceaccount:<ns>:<name>`` user on that
``serviceaccounts`` object); groups without a user are a bad request; the impersonated user gets
``system:authenticated`` (and a service account its ``system:serviceaccounts`` groups), and no EKS
access policy, since it authenticated through no access entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from localcloud.kube.access import AUTHENTICATED, User
from localcloud.kube.authorization import SERVICE_ACCOUNT_PREFIX, Attributes, Authorizer, forbidden
from localcloud.kube.status import bad_request


def _target(caller: User, username: str) -> Attributes:
    if username.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        return Attributes(caller, "impersonate", resource="serviceaccounts", name=name, namespace=namespace)
    return Attributes(caller, "impersonate", resource="users", name=username)


def impersonate(caller: User, username: str, groups: Sequence[str], authorizer: Authorizer) -> User:
    """The user to act as, or 403 naming the first target the caller may not impersonate."""
    if not username:
        if groups:
            raise bad_request(f"requested {list(groups)} without impersonating a user")
        return caller
    targets = [_target(caller, username)]
    targets += [Attributes(caller, "impersonate", resource="groups", name=group) for group in groups]
    for target in targets:
        decision = authorizer.decide(target)
        if not decision.allowed:
            raise forbidden(target, decision.reason)
    extra: list[str] = []
    if username.startswith(SERVICE_ACCOUNT_PREFIX) and not groups:
        namespace = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")[0]
        extra = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    all_groups = [*groups, *extra]
    if AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    return User(username, tuple(all_groups))
