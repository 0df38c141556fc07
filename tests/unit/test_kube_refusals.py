"""Who refused a request, read from the API's status and message (RBAC, admission, validation)."""

from __future__ import annotations

import pytest

from eks_capture.kube.refusals import refused_by


@pytest.mark.parametrize(
    ("status", "message", "who"),
    [
        (
            403,
            'jobs.batch is forbidden: User "eks-capture-trigger" cannot create resource "jobs" in API group '
            '"batch" in the namespace "eks-capture"',
            "RBAC",
        ),
        (
            400,
            'admission webhook "validate.kyverno.svc-fail" denied the request: host-network is not allowed',
            "an admission webhook",
        ),
        (
            403,
            'admission webhook "validation.gatekeeper.sh" denied the request: [psp-host-network] denied',
            "an admission webhook",
        ),
        (
            403,
            'pods "cap-x" is forbidden: violates PodSecurity "restricted:latest": host namespaces '
            "(hostNetwork=true)",
            "Pod Security admission",
        ),
        (
            403,
            'pods "cap-x" is forbidden: exceeded quota: capture, requested: pods=1, used: pods=1, '
            "limited: pods=1",
            "ResourceQuota admission",
        ),
        (
            403,
            'pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: a',
            "ResourceQuota admission",
        ),
        (
            403,
            'pods "cap-" is forbidden: error looking up service account eks-capture/eks-capture-uploader: '
            'serviceaccount "eks-capture-uploader" not found',
            "ServiceAccount admission",
        ),
        (
            403,
            'jobs.batch "j" is forbidden: unable to create new content in namespace eks-capture '
            "because it is being terminated",
            "NamespaceLifecycle admission",
        ),
        (403, 'jobs.batch "j" is forbidden: denied by ImagePolicyWebhook', "admission"),
        (422, 'Job.batch "j" is invalid: spec.template.spec.containers: Required value', "validation"),
        (404, 'namespaces "eks-capture" not found', "the API server"),
    ],
)
def test_a_refusal_names_who_said_no(status: int, message: str, who: str) -> None:
    assert refused_by(status, message) == who
