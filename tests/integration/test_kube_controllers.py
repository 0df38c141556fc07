"""Job and DaemonSet controllers, scheduler and scripted kubelets, observed through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch

from localcloud.kube import KubeEmulator, PodBehaviour
from tests.fixtures.kube import apps_api

CONTAINER = {"name": "agent", "image": "registry.example/agent:1.0"}


def job_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "eks-capture"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "eks-capture"}},
                "spec": {"restartPolicy": "Never", "containers": [CONTAINER]},
            },
            **spec,
        },
    }


def conditions(job: Any) -> dict[str, tuple[str, str | None]]:
    return {c.type: (c.status, c.reason) for c in job.status.conditions or []}


def wait_job(kube: KubeEmulator, batch: Any, name: str, kind: str, timeout: float = 8.0) -> Any:
    def done() -> bool:
        return kind in conditions(batch.read_namespaced_job(name, "default"))

    kube.wait_for(done, timeout=timeout, what=f"job {name} {kind}")
    return batch.read_namespaced_job(name, "default")


def test_job_pod_carries_job_labels_and_owner_and_job_completes(
    kube: KubeEmulator, batch: Any, core: Any
) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(run_for=0.2))
    created = batch.create_namespaced_job("default", job_body("cap"))
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    kube.settle()
    [pod] = core.list_namespaced_pod("default", label_selector="job-name=cap").items
    assert pod.metadata.name.startswith("cap-")
    for key, value in {
        "job-name": "cap",
        "batch.kubernetes.io/job-name": "cap",
        "controller-uid": uid,
        "app.kubernetes.io/name": "eks-capture",
    }.items():
        assert pod.metadata.labels[key] == value
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "cap", uid, True)
    job = wait_job(kube, batch, "cap", "Complete")
    assert conditions(job)["Complete"] == ("True", "CompletionsReached")
    assert (job.status.succeeded, job.status.active, job.status.failed) == (1, None, None)
    assert job.status.start_time <= job.status.completion_time


def test_failing_pod_fails_the_job_at_the_backoff_limit(kube: KubeEmulator, batch: Any, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(
        PodBehaviour(run_for=0.0, exit_code=2, message="tcpdump: any: You don't have permission")
    )
    batch.create_namespaced_job("default", job_body("bad", backoffLimit=2))
    job = wait_job(kube, batch, "bad", "Failed")
    assert conditions(job)["Failed"] == ("True", "BackoffLimitExceeded")
    assert job.status.failed == 3
    pods = core.list_namespaced_pod("default", label_selector="job-name=bad").items
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Failed"}
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        2,
        "Error",
        "tcpdump: any: You don't have permission",
    )


def test_job_past_its_active_deadline_fails_and_its_pods_are_deleted(
    kube: KubeEmulator, batch: Any, core: Any
) -> None:
    kube.add_node("n1")
    batch.create_namespaced_job("default", job_body("slow", activeDeadlineSeconds=1))
    kube.settle()
    assert (
        core.list_namespaced_pod("default", label_selector="job-name=slow").items[0].status.phase == "Running"
    )
    job = wait_job(kube, batch, "slow", "Failed", timeout=5)
    assert conditions(job)["Failed"] == ("True", "DeadlineExceeded")
    assert job.status.conditions[-1].message == "Job was active longer than specified deadline"
    kube.settle()
    assert core.list_namespaced_pod("default", label_selector="job-name=slow").items == []


def test_pod_active_deadline_fails_the_pod(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"activeDeadlineSeconds": 1, "containers": [CONTAINER]}},
    )
    kube.wait_for(
        lambda: core.read_namespaced_pod("p", "default").status.phase == "Failed",
        timeout=5,
        what="pod failed",
    )
    assert core.read_namespaced_pod("p", "default").status.reason == "DeadlineExceeded"


def test_pod_goes_pending_then_running_then_succeeded(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(start_after=1.0, run_for=0.5))
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never", "containers": [CONTAINER]}}
    )
    kube.settle()
    pending = core.read_namespaced_pod("p", "default")
    assert (pending.status.phase, pending.spec.node_name) == ("Pending", "n1")
    assert pending.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    # Every status the pod goes through, as the API streams them: a read after a poll saw Running could come
    # after the 0.5 s run on a loaded machine (it did: ready False, the container already terminated).
    watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
    phases: dict[str, Any] = {}
    for event in watcher.stream(
        core.list_namespaced_pod,
        "default",
        resource_version=pending.metadata.resource_version,
        timeout_seconds=30,
    ):
        pod = event["object"]
        phases.setdefault(pod.status.phase, pod)
        if pod.status.phase == "Succeeded":
            watcher.stop()
    assert [phase for phase in phases if phase != "Pending"] == ["Running", "Succeeded"], list(phases)
    running = phases["Running"]
    assert running.status.container_statuses[0].ready is True
    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    done = phases["Succeeded"].status.container_statuses[0].state.terminated
    assert (done.exit_code, done.reason) == (0, "Completed")


@pytest.mark.parametrize(
    ("spec", "message_part"),
    [
        ({"nodeName": "no-such-node"}, "0/1 nodes are available"),
        ({"tolerations": []}, "untolerated taint {dedicated: gpu}"),
        ({"nodeSelector": {"eks-capture.io/node": "elsewhere"}}, "didn't match Pod's node affinity/selector"),
    ],
)
def test_pod_that_cannot_run_stays_pending_unschedulable(
    kube: KubeEmulator, core: Any, spec: dict[str, Any], message_part: str
) -> None:
    kube.add_node("tainted", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"containers": [CONTAINER], **spec}}
    )
    kube.settle()
    pod = core.read_namespaced_pod("p", "default")
    assert pod.status.phase == "Pending"
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert message_part in scheduled.message


def test_toleration_lets_a_pod_onto_a_tainted_node(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("tainted", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    tolerations = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "tainted", "tolerations": tolerations, "containers": [CONTAINER]},
        },
    )
    kube.settle()
    assert core.read_namespaced_pod("p", "default").status.phase == "Running"


def test_image_pull_failure_leaves_the_pod_pending_in_backoff(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(image_pull_error=True), node="n1")
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [CONTAINER]}}
    )
    kube.settle()
    pod = core.read_namespaced_pod("p", "default")
    waiting = pod.status.container_statuses[0].state.waiting
    assert (pod.status.phase, waiting.reason) == ("Pending", "ImagePullBackOff")
    assert CONTAINER["image"] in waiting.message


def test_pods_on_a_not_ready_node_do_not_start(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("down", ready=False)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "down", "tolerations": [{"operator": "Exists"}], "containers": [CONTAINER]},
        },
    )
    kube.settle()
    assert core.read_namespaced_pod("p", "default").status.phase == "Pending"
    kube.set_node_ready("down", True)
    kube.settle()
    assert core.read_namespaced_pod("p", "default").status.phase == "Running"


def test_scripts_choose_behaviour_per_node(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("good")
    kube.add_node("bad")
    kube.script_pods(PodBehaviour(run_for=0.0, exit_code=1, message="boom"), node="bad")
    kube.script_pods(PodBehaviour(run_for=0.0), node="good")
    for node in ("good", "bad"):
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": node},
                "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [CONTAINER]},
            },
        )
    kube.wait_for(
        lambda: all(
            p.status.phase in ("Succeeded", "Failed") for p in core.list_namespaced_pod("default").items
        ),
        what="both done",
    )
    assert {p.metadata.name: p.status.phase for p in core.list_namespaced_pod("default").items} == {
        "good": "Succeeded",
        "bad": "Failed",
    }


def recorder(tolerations: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "recorder"},
        "spec": {
            "selector": {"matchLabels": {"app": "recorder"}},
            "template": {
                "metadata": {"labels": {"app": "recorder"}},
                "spec": {
                    "nodeSelector": {"capture": "on"},
                    "hostNetwork": True,
                    "tolerations": tolerations or [],
                    "containers": [CONTAINER],
                },
            },
        },
    }


def test_daemonset_runs_one_pod_per_matching_tolerated_node(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("plain", labels={"capture": "on"})
    kube.add_node(
        "tainted",
        labels={"capture": "on"},
        taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}],
    )
    kube.add_node("unlabelled")
    apps = apps_api(kube_client)
    apps.create_namespaced_daemon_set("default", recorder())
    kube.settle()
    placed = {
        p.spec.node_name for p in core.list_namespaced_pod("default", label_selector="app=recorder").items
    }
    assert placed == {"plain"}
    status = apps.read_namespaced_daemon_set("recorder", "default").status
    assert (status.desired_number_scheduled, status.current_number_scheduled, status.number_ready) == (
        1,
        1,
        1,
    )
    kube.add_node("late", labels={"capture": "on"})
    kube.settle()
    placed = {
        p.spec.node_name for p in core.list_namespaced_pod("default", label_selector="app=recorder").items
    }
    assert placed == {"plain", "late"}


def test_daemonset_toleration_covers_tainted_nodes_and_pod_ips_are_node_ips(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("plain", labels={"capture": "on"}, ip="10.0.1.10")
    kube.add_node(
        "tainted",
        labels={"capture": "on"},
        ip="10.0.1.11",
        taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}],
    )
    apps_api(kube_client).create_namespaced_daemon_set("default", recorder([{"operator": "Exists"}]))
    kube.settle()
    pods = core.list_namespaced_pod("default", label_selector="app=recorder").items
    assert {(p.spec.node_name, p.status.pod_ip) for p in pods} == {
        ("plain", "10.0.1.10"),
        ("tainted", "10.0.1.11"),
    }


def test_removing_a_node_deletes_its_daemon_pod(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("a", labels={"capture": "on"})
    kube.add_node("b", labels={"capture": "on"})
    apps_api(kube_client).create_namespaced_daemon_set("default", recorder())
    kube.settle()
    kube.remove_node("b")
    kube.settle()
    assert {p.spec.node_name for p in core.list_namespaced_pod("default").items} == {"a"}


def test_job_runs_parallel_pods_until_its_completions(kube: KubeEmulator, batch: Any, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(run_for=0.5))
    batch.create_namespaced_job("default", job_body("multi", completions=3, parallelism=2))
    kube.settle()
    assert len(core.list_namespaced_pod("default", label_selector="job-name=multi").items) == 2
    job = wait_job(kube, batch, "multi", "Complete")
    assert job.status.succeeded == 3
    assert len(core.list_namespaced_pod("default", label_selector="job-name=multi").items) == 3


def test_cordoned_node_takes_no_new_pods(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [CONTAINER]}})
    kube.settle()
    pod = core.read_namespaced_pod("p", "default")
    assert (pod.spec.node_name, pod.status.phase) == (None, "Pending")
    assert "node.kubernetes.io/unschedulable" in pod.status.conditions[0].message
