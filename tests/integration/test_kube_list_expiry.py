"""A list's continue token expires when etcd compacts its revision: the API answers 410 Expired with the
real message and a token that resumes the list at the latest revision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from localcloud.kube import KubeEmulator
from localcloud.kube.continuation import INCONSISTENT_CONTINUE


def create_pods(core: Any, count: int) -> None:
    for index in range(count):
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": f"p-{index}"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        )


def test_a_continue_token_from_before_a_compaction_is_410_expired_with_a_token_for_the_rest(
    kube: KubeEmulator, core: Any
) -> None:
    create_pods(core, 5)
    first = core.list_namespaced_pod("default", limit=2)
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p-5"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    kube.registry.compact()

    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)

    assert caught.value.status == 410
    status = json.loads(caught.value.body or "{}")
    assert (status["reason"], status["message"], status["code"]) == ("Expired", INCONSISTENT_CONTINUE, 410)
    rest = core.list_namespaced_pod("default", limit=10, _continue=status["metadata"]["continue"])
    names = [p.metadata.name for p in first.items + rest.items]
    assert names == [f"p-{index}" for index in range(6)], "the rest as it is now, p-5 included"


def test_a_token_issued_after_the_compaction_still_works(kube: KubeEmulator, core: Any) -> None:
    create_pods(core, 3)
    kube.registry.compact()
    first = core.list_namespaced_pod("default", limit=2)
    second = core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p-2"]
