"""Deletion through the official client: graceful pods, propagation policies, delete-collection."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcloud.kube import JOBS, PODS, KubeEmulator, PodBehaviour
from localcloud.kube.clock import parse_rfc3339
from tests.fixtures.kube import apps_api


def running_job(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }
        },
    }


def daemonset(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def exists(read: Any) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_running_pod_is_deleted_gracefully_after_its_containers_stop(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(stop_after=1.0), node="n1")
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeName": "n1",
                "terminationGracePeriodSeconds": 20,
                "containers": [{"name": "c", "image": "busybox"}],
            },
        },
    )
    kube.settle()
    started = datetime.datetime.now(datetime.UTC)
    deleted = core.delete_namespaced_pod("p", "default")
    assert deleted.metadata.deletion_grace_period_seconds == 20
    assert abs((deleted.metadata.deletion_timestamp - started).total_seconds() - 20) <= 2
    kube.tick()
    assert core.read_namespaced_pod("p", "default").metadata.deletion_timestamp is not None
    kube.wait_for(
        lambda: not exists(lambda: core.read_namespaced_pod("p", "default")), timeout=5, what="pod gone"
    )


def test_grace_period_zero_and_unscheduled_pods_go_at_once(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    body = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    core.create_namespaced_pod(
        "default", {**body, "metadata": {"name": "bound"}, "spec": {**body["spec"], "nodeName": "n1"}}
    )
    core.create_namespaced_pod(
        "default",
        {
            **body,
            "metadata": {"name": "nowhere"},
            "spec": {**body["spec"], "nodeSelector": {"absent": "label"}},
        },
    )
    kube.settle()
    core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)
    core.delete_namespaced_pod("nowhere", "default")
    assert not exists(lambda: core.read_namespaced_pod("bound", "default"))
    assert not exists(lambda: core.read_namespaced_pod("nowhere", "default"))


def _job_with_pod(kube: KubeEmulator, batch: Any, name: str) -> str:
    kube.add_node("n1")
    batch.create_namespaced_job("default", running_job(name))
    kube.settle()
    pods = kube.objects(PODS, "default")
    assert len(pods) == 1
    return str(pods[0]["metadata"]["name"])


def test_background_propagation_deletes_the_job_then_its_pods(
    kube: KubeEmulator, batch: Any, core: Any
) -> None:
    pod_name = _job_with_pod(kube, batch, "bg")
    batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    assert not exists(lambda: batch.read_namespaced_job("bg", "default"))
    kube.settle()
    assert not exists(lambda: core.read_namespaced_pod(pod_name, "default"))


def test_foreground_propagation_keeps_the_job_until_its_pods_are_gone(
    kube: KubeEmulator, batch: Any, core: Any
) -> None:
    kube.script_pods(PodBehaviour(stop_after=1.0))
    pod_name = _job_with_pod(kube, batch, "fg")
    batch.delete_namespaced_job("fg", "default", propagation_policy="Foreground")
    job = batch.read_namespaced_job("fg", "default")
    assert job.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in job.metadata.finalizers
    kube.wait_for(
        lambda: core.read_namespaced_pod(pod_name, "default").metadata.deletion_timestamp is not None,
        what="pod terminating",
    )
    assert exists(lambda: batch.read_namespaced_job("fg", "default"))
    kube.wait_for(lambda: not exists(lambda: batch.read_namespaced_job("fg", "default")), what="job gone")
    assert not exists(lambda: core.read_namespaced_pod(pod_name, "default"))


@pytest.mark.parametrize("policy", ["Orphan", None])
def test_orphan_propagation_and_the_batch_v1_default_leave_pods_without_owner(
    kube: KubeEmulator, batch: Any, core: Any, policy: str | None
) -> None:
    pod_name = _job_with_pod(kube, batch, "orph")
    batch.delete_namespaced_job("orph", "default", propagation_policy=policy)
    kube.settle()
    assert not exists(lambda: batch.read_namespaced_job("orph", "default"))
    assert core.read_namespaced_pod(pod_name, "default").metadata.owner_references is None


def test_deleting_a_daemonset_removes_its_pods(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    for name in ("n1", "n2"):
        kube.add_node(name)
    apps = apps_api(kube_client)
    apps.create_namespaced_daemon_set("default", daemonset("rec"))
    kube.settle()
    assert len(core.list_namespaced_pod("default", label_selector="app=rec").items) == 2
    apps.delete_namespaced_daemon_set("rec", "default")
    kube.settle()
    assert core.list_namespaced_pod("default", label_selector="app=rec").items == []


def test_delete_collection_removes_only_selected_pods(kube: KubeEmulator, core: Any) -> None:
    for name, role in (("a", "capture"), ("b", "capture"), ("c", "other")):
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": name, "labels": {"role": role}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    core.delete_collection_namespaced_pod("default", label_selector="role=capture")
    kube.settle()
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["c"]


def test_delete_with_a_stale_uid_precondition_conflicts(core: Any) -> None:
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000")
    )
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod("p", "default", body=options)
    assert caught.value.status == 409


def test_finished_job_is_deleted_after_its_ttl(kube: KubeEmulator, batch: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(run_for=0.0))
    body = running_job("short")
    body["spec"]["ttlSecondsAfterFinished"] = 2
    batch.create_namespaced_job("default", body)
    kube.wait_for(
        lambda: bool(kube.objects(JOBS)) and "conditions" in kube.objects(JOBS)[0]["status"],
        what="job finished",
    )
    [job] = kube.objects(JOBS)
    ended = max(parse_rfc3339(condition["lastTransitionTime"]) for condition in job["status"]["conditions"])
    last_seen = [ended]

    def gone() -> bool:
        looked_at = time.time()  # before the look: the job was there at least until then
        if kube.objects(JOBS):
            last_seen.append(looked_at)
            return False
        return True

    kube.wait_for(gone, timeout=5, what="job expired")
    # Its end has second precision, as in the API: with a 2 s TTL it is there a second after that second.
    assert max(last_seen) >= ended + 1.0


def test_pods_of_a_vanished_job_are_collected_but_owners_of_unserved_kinds_are_left(
    kube: KubeEmulator,
) -> None:
    kube.add_node("n1")
    for name, kind in (("of-job", "Job"), ("of-replicaset", "ReplicaSet")):
        owner = {
            "apiVersion": "batch/v1",
            "kind": kind,
            "name": "gone",
            "uid": f"uid-{kind}",
            "controller": True,
        }
        kube.create(
            PODS,
            "default",
            {
                "metadata": {"name": name, "ownerReferences": [owner]},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    kube.settle()
    assert [p["metadata"]["name"] for p in kube.objects(PODS)] == ["of-replicaset"]
