"""Watches through the official client's ``watch.Watch``: ordered events, from a version, filtered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from localcloud.kube import KubeEmulator
from tests.fixtures.kube import core_api, restricted_client


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
    }


def later(action: Callable[[], object], delay: float = 0.3) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def events(core: Any, seconds: int, **kwargs: Any) -> list[tuple[str, str, str]]:
    watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
    stream = watcher.stream(core.list_namespaced_pod, "default", timeout_seconds=seconds, **kwargs)
    return [(e["type"], e["object"].metadata.name, e["object"].status.phase) for e in stream]


@pytest.fixture
def core(kube: KubeEmulator, kube_client: client.ApiClient) -> Any:
    kube.add_node("n1")
    return core_api(kube_client)


def test_watch_streams_a_pods_life_in_order(core: Any) -> None:
    def create_then_delete() -> None:
        core.create_namespaced_pod("default", pod("p"))
        time.sleep(0.5)
        core.delete_namespaced_pod("p", "default")

    thread = later(create_then_delete)
    seen = events(core, 2)
    thread.join()
    kinds = [kind for kind, _, _ in seen]
    assert kinds[0] == "ADDED"
    assert kinds[-1] == "DELETED"
    assert set(kinds[1:-1]) == {"MODIFIED"}
    assert ("MODIFIED", "p", "Running") in seen


def test_watch_from_a_list_resource_version_sees_only_later_changes(core: Any) -> None:
    core.create_namespaced_pod("default", pod("before"))
    version = core.list_namespaced_pod("default").metadata.resource_version
    thread = later(lambda: core.create_namespaced_pod("default", pod("after")), delay=0.1)
    seen = events(core, 1, resource_version=version)
    thread.join()
    assert {name for kind, name, _ in seen if kind == "ADDED"} == {"after"}


def test_watch_without_a_version_starts_with_the_current_objects(core: Any) -> None:
    core.create_namespaced_pod("default", pod("existing"))
    assert events(core, 1)[0][:2] == ("ADDED", "existing")


def test_watch_applies_the_label_selector(core: Any) -> None:
    def create_both() -> None:
        core.create_namespaced_pod("default", pod("capture", {"app": "eks-capture"}))
        core.create_namespaced_pod("default", pod("other", {"app": "web"}))

    thread = later(create_both)
    seen = events(core, 1, label_selector="app=eks-capture")
    thread.join()
    assert {name for _, name, _ in seen} == {"capture"}


def test_watch_is_a_verb_rbac_must_allow(kube: KubeEmulator) -> None:
    lister = core_api(
        restricted_client(kube, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    )
    with pytest.raises(ApiException) as caught:
        events(lister, 1)
    assert caught.value.status == 403
    assert lister.list_namespaced_pod("default").items == []
