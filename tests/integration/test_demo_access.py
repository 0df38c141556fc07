"""What ``make demo`` shows of the cluster's access (localcloud/demo_access.py), against the local cloud as
the demo starts it: the applied manifests, a green doctor, a usable kubeconfig, and kubectl as the teardown's
and the trigger's own identities answering as default-deny RBAC and the stack's grants must.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eks_capture.kube import eks
from localcloud.access import kubectl_as
from localcloud.cloud import LocalCloud
from localcloud.demo_access import show_setup, show_teardown_view
from localcloud.kubectl import Kubectl
from tests.fixtures.stack import CLUSTER, STACK_PARAMETERS

NAMESPACE = "eks-capture"
TEARDOWN_AS_TRIGGER = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "teardown-as-trigger", "namespace": NAMESPACE},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "eks-capture-trigger"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "eks-capture-teardown"}],
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    saved = dict(os.environ)
    parameters = {k: v for k, v in STACK_PARAMETERS.items() if k != "ClusterNames"}
    started = LocalCloud.start(CLUSTER, parameters)
    try:
        yield started
    finally:
        eks.clear_caches()
        started.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_the_set_up_shows_each_applied_manifest_a_usable_kubeconfig_and_an_all_green_doctor(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[str] = []

    show_setup(cloud, tmp_path, shown.append)

    printed = capsys.readouterr().out
    assert shown[0] == "$ eks-capture manifests --stack eks-capture | kubectl apply -f -"
    assert "  namespace/eks-capture created" in shown
    assert "  role.rbac.authorization.k8s.io/eks-capture-teardown created" in shown
    assert "$ eks-capture doctor -c shop-prod --stack eks-capture" in shown
    assert "all 11 checks green" in printed
    assert "FAIL" not in printed
    assert "UNKNOWN" not in printed
    kubectl = Kubectl(tmp_path / "kubeconfig", tmp_path / "cache")
    assert kubectl.check("get", "namespace", NAMESPACE, "-o", "name").strip() == f"namespace/{NAMESPACE}"


def test_the_teardown_sees_nothing_left_and_may_not_create_a_job_where_the_trigger_may(
    cloud: LocalCloud,
) -> None:
    shown: list[str] = []

    assert show_teardown_view(cloud, shown.append)

    assert f"  No resources found in {NAMESPACE} namespace." in shown
    assert shown[-2].endswith("# as the teardown: no")
    assert shown[-1].endswith("# as the trigger: yes")


def test_a_teardown_granted_the_triggers_role_is_shown_able_to_create_jobs_and_fails_the_view(
    cloud: LocalCloud,
) -> None:
    operator = kubectl_as(cloud.kube)
    operator.apply(json.dumps(TEARDOWN_AS_TRIGGER))
    shown: list[str] = []
    try:
        assert not show_teardown_view(cloud, shown.append)
    finally:
        operator.check("delete", "-n", NAMESPACE, "rolebinding", "teardown-as-trigger")

    assert shown[-2].endswith("# as the teardown: yes")
