"""Objects through the official client: metadata, CRUD, Status errors, selectors and pagination."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcloud.kube import PODS, KubeEmulator, PodBehaviour
from tests.fixtures.kube import apps_api, batch_api, core_api


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec},
    }


def job(name: str, **template_spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                    **template_spec,
                }
            }
        },
    }


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "{}")
    return body


def test_create_fills_uid_resource_version_and_creation_time(core: Any) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    first = core.create_namespaced_pod("default", pod("first"))
    second = core.create_namespaced_pod("default", pod("second"))
    assert first.metadata.uid != second.metadata.uid
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert before <= first.metadata.creation_timestamp <= datetime.datetime.now(datetime.UTC)
    assert first.status.phase == "Pending"
    fetched = core.read_namespaced_pod("first", "default")
    assert (fetched.metadata.uid, fetched.metadata.creation_timestamp) == (
        first.metadata.uid,
        first.metadata.creation_timestamp,
    )
    assert int(fetched.metadata.resource_version) >= int(first.metadata.resource_version)


def test_every_write_raises_the_resource_version(core: Any) -> None:
    versions = [int(core.create_namespaced_pod("default", pod("p")).metadata.resource_version)]
    for value in ("a", "b", "c"):
        patched = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"step": value}}})
        versions.append(int(patched.metadata.resource_version))
    assert versions == sorted(set(versions))


def test_generate_name_gives_distinct_names_with_the_prefix(core: Any) -> None:
    body = {"metadata": {"generateName": "capture-"}, "spec": pod("x")["spec"]}
    names = {core.create_namespaced_pod("default", body).metadata.name for _ in range(5)}
    assert len(names) == 5
    assert all(name.startswith("capture-") and len(name) == len("capture-") + 5 for name in names)


def test_creating_an_existing_name_is_already_exists(core: Any) -> None:
    core.create_namespaced_pod("default", pod("twice"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod("twice"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "twice" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "twice", "kind": "pods"},
        "code": 409,
    }


@pytest.mark.parametrize(
    ("read", "message", "details"),
    [
        (
            lambda k: core_api(k).read_namespaced_pod("ghost", "default"),
            'pods "ghost" not found',
            {"name": "ghost", "kind": "pods"},
        ),
        (
            lambda k: batch_api(k).read_namespaced_job("ghost", "default"),
            'jobs.batch "ghost" not found',
            {"name": "ghost", "group": "batch", "kind": "jobs"},
        ),
        (
            lambda k: core_api(k).read_node("ghost"),
            'nodes "ghost" not found',
            {"name": "ghost", "kind": "nodes"},
        ),
        (
            lambda k: apps_api(k).delete_namespaced_daemon_set("ghost", "default"),
            'daemonsets.apps "ghost" not found',
            {"name": "ghost", "group": "apps", "kind": "daemonsets"},
        ),
    ],
)
def test_missing_object_is_not_found(
    kube_client: client.ApiClient, read: Any, message: str, details: dict[str, str]
) -> None:
    with pytest.raises(ApiException) as caught:
        read(kube_client)
    assert caught.value.status == 404
    body = status_of(caught.value)
    assert (body["reason"], body["message"], body["details"], body["code"]) == (
        "NotFound",
        message,
        details,
        404,
    )


def test_creating_in_a_missing_namespace_is_not_found(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("nowhere", pod("p"))
    assert status_of(caught.value)["message"] == 'namespaces "nowhere" not found'


@pytest.mark.parametrize(
    ("create", "field", "reason"),
    [
        (
            lambda k: core_api(k).create_namespaced_pod("default", pod("Bad_Name")),
            "metadata.name",
            "FieldValueInvalid",
        ),
        (
            lambda k: core_api(k).create_namespaced_pod("default", pod("p", {"app": "not ok!"})),
            "metadata.labels",
            "FieldValueInvalid",
        ),
        (
            lambda k: core_api(k).create_namespaced_pod("default", pod("p", {"-bad-key": "v"})),
            "metadata.labels",
            "FieldValueInvalid",
        ),
        (
            lambda k: core_api(k).create_namespaced_pod(
                "default", {"metadata": {"name": "p"}, "spec": {"containers": []}}
            ),
            "spec.containers",
            "FieldValueRequired",
        ),
        (
            lambda k: core_api(k).create_namespaced_pod("default", pod("p", restartPolicy="Sometimes")),
            "spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            lambda k: core_api(k).create_namespaced_pod(
                "default",
                {
                    "metadata": {"name": "p"},
                    "spec": {
                        "containers": [
                            {"name": "c", "image": "i", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
                        ]
                    },
                },
            ),
            "spec.containers[0].volumeMounts[0].name",
            "FieldValueNotFound",
        ),
        (
            lambda k: core_api(k).create_namespace({"metadata": {"name": "has.dots"}}),
            "metadata.name",
            "FieldValueInvalid",
        ),
        (
            lambda k: batch_api(k).create_namespaced_job("default", job("j", restartPolicy="Always")),
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            lambda k: batch_api(k).create_namespaced_job("default", job("j" * 64)),
            "metadata.name",
            "FieldValueInvalid",
        ),
        (
            lambda k: core_api(k).create_namespaced_service(
                "default", {"metadata": {"name": "svc"}, "spec": {"ports": []}}
            ),
            "spec.ports",
            "FieldValueRequired",
        ),
        (
            lambda k: apps_api(k).create_namespaced_daemon_set(
                "default",
                {
                    "metadata": {"name": "ds"},
                    "spec": {
                        "selector": {"matchLabels": {"app": "a"}},
                        "template": {
                            "metadata": {"labels": {"app": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]},
                        },
                    },
                },
            ),
            "spec.template.metadata.labels",
            "FieldValueInvalid",
        ),
    ],
)
def test_invalid_object_is_unprocessable_with_the_bad_field(
    kube_client: client.ApiClient, create: Any, field: str, reason: str
) -> None:
    with pytest.raises(ApiException) as caught:
        create(kube_client)
    assert caught.value.status == 422
    body = status_of(caught.value)
    assert body["reason"] == "Invalid"
    assert (field, reason) in [(c["field"], c["reason"]) for c in body["details"]["causes"]]
    assert f"{field}: " in body["message"]
    assert " is invalid: " in body["message"]


def test_invalid_pod_names_its_kind_and_name(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod("Bad_Name"))
    body = status_of(caught.value)
    assert body["message"].startswith(
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123'
    )
    assert body["details"]["kind"] == "Pod"
    assert body["details"]["name"] == "Bad_Name"


def test_merge_patch_adds_and_removes_labels(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p", {"keep": "1", "drop": "1"}))
    patched = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"drop": None, "new": "2"}}})
    assert patched.metadata.labels == {"keep": "1", "new": "2"}


def test_json_patch_operations_apply_in_order(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p", {"a": "1"}))
    operations = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "add", "path": "/metadata/annotations", "value": {"note": "x"}},
    ]
    patched = core.patch_namespaced_pod("p", "default", operations)
    assert (patched.metadata.labels, patched.metadata.annotations) == ({"a": "2"}, {"note": "x"})


def test_patch_with_a_stale_resource_version_conflicts(core: Any) -> None:
    created = core.create_namespaced_pod("default", pod("p"))
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_pod(
            "p",
            "default",
            {"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"x": "2"}}},
        )
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith(
        'Operation cannot be fulfilled on pods "p": the object has been modified'
    )


def test_pod_spec_is_immutable_but_its_deadline_is_not(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p"))
    assert (
        core.patch_namespaced_pod(
            "p", "default", {"spec": {"activeDeadlineSeconds": 30}}
        ).spec.active_deadline_seconds
        == 30
    )
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_pod("p", "default", {"spec": {"nodeName": "elsewhere"}})
    assert caught.value.status == 422
    assert status_of(caught.value)["details"]["causes"][0]["reason"] == "FieldValueForbidden"


LABELLED = {
    "web-1": {"app": "web", "tier": "front"},
    "web-2": {"app": "web", "tier": "back"},
    "db-1": {"app": "db", "tier": "back"},
    "bare": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-1", "web-2"}),
        ("app==db", {"db-1"}),
        ("app!=web", {"db-1", "bare"}),
        ("app in (web, db)", {"web-1", "web-2", "db-1"}),
        ("tier notin (back)", {"web-1", "bare"}),
        ("tier", {"web-1", "web-2", "db-1"}),
        ("!tier", {"bare"}),
        ("app=web,tier=back", {"web-2"}),
        ("app in (web),!missing,tier!=front", {"web-2"}),
    ],
)
def test_label_selector_operators(core: Any, selector: str, expected: set[str]) -> None:
    for name, labels in LABELLED.items():
        core.create_namespaced_pod("default", pod(name, labels))
    found = {p.metadata.name for p in core.list_namespaced_pod("default", label_selector=selector).items}
    assert found == expected


def test_malformed_label_selector_is_a_bad_request(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", label_selector="app in web")
    assert (caught.value.status, status_of(caught.value)["reason"]) == (400, "BadRequest")


def test_field_selectors_on_node_phase_name_and_namespace(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("node-a")
    kube.add_node("node-b")
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_pod("default", pod("on-a", nodeName="node-a"))
    core.create_namespaced_pod("default", pod("on-b", nodeName="node-b"))
    core.create_namespaced_pod("other", pod("elsewhere", nodeName="node-a"))
    kube.settle()

    def names(**kwargs: str) -> set[str]:
        return {p.metadata.name for p in core.list_pod_for_all_namespaces(**kwargs).items}

    assert names(field_selector="spec.nodeName=node-a") == {"on-a", "elsewhere"}
    assert names(field_selector="spec.nodeName=node-a,metadata.namespace=default") == {"on-a"}
    assert names(field_selector="metadata.name!=on-a,status.phase=Running") == {"on-b", "elsewhere"}
    assert names(field_selector="status.phase=Pending") == set()


def test_unknown_field_selector_is_a_bad_request(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", field_selector="spec.containers=x")
    assert status_of(caught.value)["message"] == "field label not supported: spec.containers"


def test_pagination_walks_every_item_once_in_key_order(core: Any) -> None:
    created = [f"p-{i:02d}" for i in range(25)]
    for name in created:
        core.create_namespaced_pod("default", pod(name, {"batch": "one"}))
    pages, token = [], None
    while True:
        page = core.list_namespaced_pod("default", limit=10, _continue=token)
        pages.append(page)
        token = page.metadata._continue
        if not token:
            break
    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert pages[0].metadata.remaining_item_count == 15
    assert [p.metadata.name for page in pages for p in page.items] == sorted(created)


def test_pagination_with_a_selector_fills_pages_with_matches(core: Any) -> None:
    for i in range(12):
        core.create_namespaced_pod("default", pod(f"p-{i:02d}", {"even": str(i % 2 == 0).lower()}))
    first = core.list_namespaced_pod("default", label_selector="even=true", limit=4)
    second = core.list_namespaced_pod(
        "default", label_selector="even=true", limit=4, _continue=first.metadata._continue
    )
    assert [p.metadata.name for p in first.items + second.items] == [f"p-{i:02d}" for i in range(0, 12, 2)]
    assert second.metadata._continue is None


def test_garbled_continue_token_is_a_bad_request(core: Any) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", limit=1, _continue="garbage")
    assert caught.value.status == 400


def test_cluster_wide_list_spans_namespaces(core: Any) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    core.create_namespaced_pod("team-a", pod("a"))
    core.create_namespaced_pod("default", pod("d"))
    everywhere = {(p.metadata.namespace, p.metadata.name) for p in core.list_pod_for_all_namespaces().items}
    assert everywhere == {("team-a", "a"), ("default", "d")}
    assert [p.metadata.name for p in core.list_namespaced_pod("team-a").items] == ["a"]


def test_services_get_distinct_cluster_ips_from_the_service_cidr(core: Any) -> None:
    ips = []
    for name in ("api", "web"):
        svc = core.create_namespaced_service(
            "default",
            {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}},
        )
        ips.append(svc.spec.cluster_ip)
    dns = core.read_namespaced_service("kube-dns", "kube-system").spec.cluster_ip
    assert len({*ips, dns}) == 3
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("172.20.0.0/16") for ip in [*ips, dns])


def test_nodes_carry_eks_labels_taints_conditions_and_addresses(kube: KubeEmulator, core: Any) -> None:
    kube.add_node(
        "n1",
        instance_id="i-0aaa",
        zone="eu-west-1c",
        ip="10.0.3.7",
        labels={"role": "ingress"},
        taints=[{"key": "dedicated", "value": "ingress", "effect": "NoSchedule"}],
    )
    kube.add_node("n2", ready=False)
    n1, n2 = core.read_node("n1"), core.read_node("n2")
    assert n1.spec.provider_id == "aws:///eu-west-1c/i-0aaa"
    assert n1.metadata.labels["topology.kubernetes.io/zone"] == "eu-west-1c"
    assert n1.metadata.labels["role"] == "ingress"
    assert [(t.key, t.value, t.effect) for t in n1.spec.taints] == [("dedicated", "ingress", "NoSchedule")]
    assert {a.type: a.address for a in n1.status.addresses}["InternalIP"] == "10.0.3.7"
    ready = {
        n.metadata.name: next(c.status for c in n.status.conditions if c.type == "Ready") for n in (n1, n2)
    }
    assert ready == {"n1": "True", "n2": "False"}


def test_deleting_a_namespace_terminates_it_and_its_contents(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(stop_after=1.0))
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_pod("doomed", pod("p", nodeName="n1"))
    kube.settle()
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("doomed", pod("late"))
    assert caught.value.status == 403
    assert "because it is being terminated" in status_of(caught.value)["message"]
    kube.wait_for(
        lambda: "doomed" not in {ns.metadata.name for ns in core.list_namespace().items},
        what="namespace gone",
    )
    assert core.list_namespaced_pod("doomed").items == []


def test_clients_cannot_set_status_on_create_but_seeding_can(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    asked = core.create_namespaced_pod(
        "default", {**pod("client"), "status": {"phase": "Running", "podIP": "10.9.9.9"}}
    )
    assert (asked.status.phase, asked.status.pod_ip) == ("Pending", None)
    kube.create(PODS, "default", {**pod("seeded", nodeName="n1"), "status": {"podIP": "10.0.3.7"}})
    kube.settle()
    seeded = core.read_namespaced_pod("seeded", "default")
    assert (seeded.status.phase, seeded.status.pod_ip) == ("Running", "10.0.3.7")


def test_replace_needs_the_current_resource_version_when_it_gives_one(core: Any, kube: KubeEmulator) -> None:
    created = core.create_namespaced_pod("default", pod("p", {"v": "1"}))
    kube.settle()  # scheduling and the kubelet's status updates move the version on, as on a real cluster
    body = core.read_namespaced_pod("p", "default")
    body.metadata.labels = {"v": "2"}
    replaced = core.replace_namespaced_pod("p", "default", body)
    assert replaced.metadata.labels == {"v": "2"}
    body.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_pod("p", "default", body)
    assert status_of(caught.value)["reason"] == "Conflict"


def test_status_is_written_only_through_the_status_subresource(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p"))
    main = core.patch_namespaced_pod("p", "default", {"status": {"phase": "Succeeded"}})
    assert main.status.phase == "Pending"
    status = core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Succeeded"}})
    assert status.status.phase == "Succeeded"


def test_job_template_is_immutable(kube_client: client.ApiClient) -> None:
    batch = batch_api(kube_client)
    batch.create_namespaced_job("default", job("j"))
    with pytest.raises(ApiException) as caught:
        batch.patch_namespaced_job(
            "j", "default", {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}
        )
    causes = status_of(caught.value)["details"]["causes"]
    assert [(c["field"], c["message"].endswith("field is immutable")) for c in causes] == [
        ("spec.template", True)
    ]


def test_pod_log_needs_a_container_name_when_the_pod_has_several(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1")
    kube.script_pods(PodBehaviour(log="listening on any\n"))
    containers = [{"name": "capture", "image": "agent"}, {"name": "upload", "image": "agent"}]
    core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": containers}}
    )
    kube.settle()
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log("p", "default")
    assert status_of(caught.value)["message"] == (
        "a container name must be specified for pod p, choose one of: [capture upload]"
    )
    assert core.read_namespaced_pod_log("p", "default", container="capture") == "listening on any\n"
