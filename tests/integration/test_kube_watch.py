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
from tests.fixtures.waiting import eventually


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


def events_until(core: Any, last: tuple[str, str], **kwargs: Any) -> list[tuple[str, str, str]]:
    """The watch's events up to the first of kind and name ``last``: a stop condition, not a time window,
    so a loaded machine delivers the same events later, never fewer (30 s at most)."""
    watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
    seen = []
    for event in watcher.stream(core.list_namespaced_pod, "default", timeout_seconds=30, **kwargs):
        seen.append((event["type"], event["object"].metadata.name, event["object"].status.phase))
        if seen[-1][:2] == last:
            watcher.stop()
    return seen


def list_version(core: Any) -> str:
    """The resource version a watch starting now goes on from: what happens later is streamed to it."""
    return str(core.list_namespaced_pod("default").metadata.resource_version)


@pytest.fixture
def core(kube: KubeEmulator, kube_client: client.ApiClient) -> Any:
    kube.add_node("n1")
    return core_api(kube_client)


def test_watch_streams_a_pods_life_in_order(core: Any) -> None:
    def create_then_delete() -> None:
        core.create_namespaced_pod("default", pod("p"))
        eventually(
            lambda: core.read_namespaced_pod("p", "default").status.phase == "Running",
            timeout=10,
            what="running",
        )
        core.delete_namespaced_pod("p", "default")

    version = list_version(core)
    thread = later(create_then_delete)
    seen = events_until(core, ("DELETED", "p"), resource_version=version)
    thread.join()
    kinds = [kind for kind, _, _ in seen]
    assert kinds[0] == "ADDED"
    assert kinds[-1] == "DELETED"
    assert set(kinds[1:-1]) == {"MODIFIED"}
    assert ("MODIFIED", "p", "Running") in seen


def test_watch_from_a_list_resource_version_sees_only_later_changes(core: Any) -> None:
    core.create_namespaced_pod("default", pod("before"))
    version = list_version(core)
    thread = later(lambda: core.create_namespaced_pod("default", pod("after")), delay=0.1)
    seen = events_until(core, ("ADDED", "after"), resource_version=version)
    thread.join()
    assert {name for kind, name, _ in seen if kind == "ADDED"} == {"after"}


def test_watch_without_a_version_starts_with_the_current_objects(core: Any) -> None:
    core.create_namespaced_pod("default", pod("existing"))
    assert events(core, 1)[0][:2] == ("ADDED", "existing")


def test_watch_applies_the_label_selector(core: Any) -> None:
    def create_both() -> None:  # the other first: the selector's event comes after it, if it passed
        core.create_namespaced_pod("default", pod("other", {"app": "web"}))
        core.create_namespaced_pod("default", pod("capture", {"app": "eks-capture"}))

    version = list_version(core)
    thread = later(create_both)
    seen = events_until(
        core, ("ADDED", "capture"), resource_version=version, label_selector="app=eks-capture"
    )
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
