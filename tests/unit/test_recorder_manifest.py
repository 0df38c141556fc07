"""The recorder DaemonSet: valid for the Kubernetes schema, true to the capture pods' security policy and to
the recorder's contract (ring budget under the emptyDir limit, window requests only via the downward API)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from eks_capture.kube.manifests.daemonset import RecorderSpec, recorder_daemonset
from eks_capture.kube.names import quantity_bytes
from eks_capture.kube.selectors import LabelSelector
from tests.fixtures.manifests import SETTINGS, SHELLS, assert_schema_valid

GENERAL = LabelSelector.model_validate({"matchLabels": {"eks.amazonaws.com/nodegroup": "general"}})
EXPRESSIONS = LabelSelector.model_validate(
    {
        "matchExpressions": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7i.large"]}
        ]
    }
)


def recorder(
    selector: LabelSelector | None = GENERAL, capture_filter: str | None = "tcp", budget: int = 512
) -> RecorderSpec:
    return RecorderSpec("shop-prod", selector, capture_filter, 128, 10, budget, "INC-4127")


def pod_of(daemonset: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = daemonset["spec"]["template"]["spec"]
    return result


def container(daemonset: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_of(daemonset)["containers"] if c["name"] == name)


def arg(item: dict[str, Any], flag: str) -> str:
    args: list[str] = item["args"]
    return args[args.index(flag) + 1]


def assert_recorder_policy(daemonset: dict[str, Any]) -> None:
    """The capture pod's policy, with one more volume kind: a downward API of the pod's annotations."""
    pod = pod_of(daemonset)
    assert pod["hostNetwork"] is True
    assert not pod.get("hostPID")
    assert not pod.get("hostIPC")
    assert pod["automountServiceAccountToken"] is False, "the recorder holds no Kubernetes credentials"
    assert "priorityClassName" not in pod, "a recorder never preempts other pods"
    for volume in pod["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds in ({"emptyDir"}, {"downwardAPI"}), "no hostPath, no secrets, no projected tokens"
        if "emptyDir" in volume:
            assert volume["emptyDir"]["sizeLimit"]
        else:
            paths = {item["fieldRef"]["fieldPath"] for item in volume["downwardAPI"]["items"]}
            assert paths == {"metadata.annotations"}
    for item in pod["containers"]:
        context = item["securityContext"]
        assert context["privileged"] is False
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert item["command"][0] not in SHELLS
    assert container(daemonset, "record")["securityContext"]["capabilities"]["add"] == ["NET_RAW", "SETGID"]
    recorder_context = container(daemonset, "recorder")["securityContext"]
    assert "add" not in recorder_context["capabilities"]
    assert recorder_context["runAsNonRoot"] is True


@pytest.mark.parametrize(
    "selector", [GENERAL, EXPRESSIONS, None], ids=["labels", "expressions", "every-node"]
)
@pytest.mark.parametrize("capture_filter", ["tcp", None])
@pytest.mark.parametrize("budget", [64, 512, 65536])
def test_recorder_daemonset_is_schema_valid_and_policy_compliant(
    selector: LabelSelector | None, capture_filter: str | None, budget: int
) -> None:
    daemonset = recorder_daemonset(recorder(selector, capture_filter, budget), SETTINGS)
    assert_schema_valid(daemonset)
    assert_recorder_policy(daemonset)


@pytest.mark.parametrize("budget", [64, 100, 512, 65536])
def test_the_ring_budget_fits_the_emptydir_with_room_for_two_open_files(budget: int) -> None:
    daemonset = recorder_daemonset(recorder(budget=budget), SETTINGS)
    budget_bytes = int(arg(container(daemonset, "recorder"), "--budget-bytes"))
    spool = next(v for v in pod_of(daemonset)["volumes"] if v["name"] == "spool")
    size_limit = quantity_bytes(spool["emptyDir"]["sizeLimit"])
    assert budget_bytes < size_limit
    assert arg(container(daemonset, "record"), "--budget-bytes") == str(budget_bytes), "one budget, two roles"
    rotate_bytes = int(arg(container(daemonset, "record"), "--rotate-megabytes")) * 1_000_000
    assert 4 * rotate_bytes <= budget_bytes, (
        "the keeper reserves two files of headroom; keep it a small share"
    )
    storage = container(daemonset, "record")["resources"]["requests"]["ephemeral-storage"]
    assert quantity_bytes(storage) >= size_limit, "the scheduler reserves the ring's disk"


def node_affinity_selector(daemonset: dict[str, Any]) -> LabelSelector:
    terms = pod_of(daemonset)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    [term] = terms["nodeSelectorTerms"]
    return LabelSelector.model_validate({"matchExpressions": term["matchExpressions"]})


LINUX = {"kubernetes.io/os": "linux"}


def test_the_node_selector_becomes_required_node_affinity_that_selects_the_same_nodes() -> None:
    as_selector = node_affinity_selector(recorder_daemonset(recorder(GENERAL), SETTINGS))
    assert as_selector.matches({**LINUX, "eks.amazonaws.com/nodegroup": "general"})
    assert not as_selector.matches({**LINUX, "eks.amazonaws.com/nodegroup": "gpu"})


@pytest.mark.parametrize("selector", [None, GENERAL])
@pytest.mark.parametrize(
    ("labels", "runs_there"),
    [
        ({**LINUX, "eks.amazonaws.com/nodegroup": "general"}, True),
        (
            {**LINUX, "eks.amazonaws.com/compute-type": "fargate", "eks.amazonaws.com/nodegroup": "general"},
            False,
        ),
        ({"kubernetes.io/os": "windows", "eks.amazonaws.com/nodegroup": "general"}, False),
    ],
)
def test_the_recorder_keeps_off_fargate_and_windows_nodes_whatever_its_selector(
    selector: Any, labels: dict[str, str], runs_there: bool
) -> None:
    as_selector = node_affinity_selector(recorder_daemonset(recorder(selector), SETTINGS))
    assert as_selector.matches(labels) is runs_there


def test_the_recorder_reads_window_requests_from_the_downward_api_file_it_mounts() -> None:
    daemonset = recorder_daemonset(recorder(), SETTINGS)
    agent = container(daemonset, "recorder")
    request_file = arg(agent, "--request-file")
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    podinfo = next(v for v in pod_of(daemonset)["volumes"] if "downwardAPI" in v)
    assert mounts[podinfo["name"]]["readOnly"] is True
    path = podinfo["downwardAPI"]["items"][0]["path"]
    assert request_file == f"{mounts[podinfo['name']]['mountPath']}/{path}"
    assert "eks-capture.io/ring-seconds" in daemonset["spec"]["template"]["metadata"]["annotations"]


def test_the_filter_stays_one_argv_element_and_the_snaplen_is_headers_only_by_default() -> None:
    record = container(recorder_daemonset(recorder(capture_filter="tcp port 443"), SETTINGS), "record")
    assert arg(record, "--filter") == "tcp port 443"
    assert record["args"][0] == "record"
    assert int(arg(record, "--snaplen")) <= 128
    assert (
        "--filter"
        not in container(recorder_daemonset(recorder(capture_filter=None), SETTINGS), "record")["args"]
    )


def test_schema_check_catches_a_broken_daemonset() -> None:
    daemonset = recorder_daemonset(recorder(), SETTINGS)
    daemonset["spec"]["updateStrategy"]["type"] = ["RollingUpdate"]
    with pytest.raises(kubernetes_validate.ValidationError):
        assert_schema_valid(daemonset)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda ds: pod_of(ds)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        lambda ds: pod_of(ds).update(automountServiceAccountToken=True),
        lambda ds: container(ds, "recorder")["securityContext"]["capabilities"].update(add=["NET_RAW"]),
        lambda ds: pod_of(ds).update(priorityClassName="system-node-critical"),
    ],
)
def test_policy_check_catches_a_weakened_daemonset(break_it: Any) -> None:
    daemonset = recorder_daemonset(recorder(), SETTINGS)
    break_it(daemonset)
    with pytest.raises(AssertionError):
        assert_recorder_policy(daemonset)
