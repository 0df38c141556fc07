"""The capture Job: valid for the Kubernetes schema and true to the security policy, for any valid request."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.labels import capture_selector
from eks_capture.kube.manifests.job import CaptureSpec, capture_job, job_name
from eks_capture.kube.names import dns1123_label_error, label_value_error
from eks_capture.kube.nodes import NodeInfo, Taint
from eks_capture.kube.selectors import LabelSelector
from eks_capture.settings import Settings
from tests.fixtures.manifests import SETTINGS, SHELLS, assert_schema_valid

STARTED = datetime(2026, 11, 25, 11, 0, 0, tzinfo=UTC)
NODE = NodeInfo(
    "ip-192-168-40-7.us-west-2.compute.internal",
    "i-0fedcba9876543210",
    "us-west-2b",
    taints=(Taint("dedicated", "NoSchedule", "ingress"), Taint("gpu", "NoExecute")),
)


def spec(
    capture_filter: str | None = "tcp port 443", duration: int = 300, reason: str = "INC-4127"
) -> CaptureSpec:
    options = CaptureOptions(duration_seconds=duration, snaplen=262144, filter=capture_filter)
    return CaptureSpec(capture_id_for_event("event-1", STARTED), "shop-prod", options, reason, STARTED)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = job["spec"]["template"]["spec"]
    return result


def container(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(job)["containers"] if c["name"] == name)


def env_of(item: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in item.get("env", [])}


def assert_security_policy(job: dict[str, Any], settings: Settings) -> None:
    """The pod security policy of docs/security-checks.md, checked property by property."""
    pod = pod_spec(job)
    assert pod["hostNetwork"] is True
    assert not pod.get("hostPID")
    assert not pod.get("hostIPC")
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == settings.capture_service_account
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for volume in pod["volumes"]:
        assert set(volume) == {"name", "emptyDir"}, "only emptyDir volumes: no hostPath, no secrets"
        assert volume["emptyDir"]["sizeLimit"]
    for item in pod["containers"]:
        context = item["securityContext"]
        assert context.get("privileged") is False
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context["capabilities"]["drop"] == ["ALL"]
        assert item["command"][0] not in SHELLS
        assert "-c" not in item["command"]
        for kind in ("requests", "limits"):
            assert set(item["resources"][kind]) == {"cpu", "memory"}
        assert "@sha256:" in item["image"] or item["image"] == settings.capture_image
    assert container(job, "capture")["securityContext"]["capabilities"].get("add") == ["NET_RAW", "SETGID"]
    upload = container(job, "upload")["securityContext"]
    assert "add" not in upload["capabilities"]
    assert upload["runAsNonRoot"] is True
    assert upload["runAsUser"] > 0


def assert_contract(job: dict[str, Any], capture: CaptureSpec, node: NodeInfo, settings: Settings) -> None:
    """Names, pinning, time boxes, labels and the agent command line of docs/design.md."""
    meta = job["metadata"]
    assert dns1123_label_error(meta["name"]) is None
    assert meta["namespace"] == settings.capture_namespace
    labels = meta["labels"]
    assert labels["app.kubernetes.io/name"] == "eks-capture"
    assert labels["app.kubernetes.io/component"] == "capture"
    assert labels["eks-capture.io/capture-id"] == capture.capture_id
    assert label_value_error(labels["eks-capture.io/node"]) is None
    assert LabelSelector.model_validate({"matchLabels": labels}).matches(
        job["spec"]["template"]["metadata"]["labels"]
    )
    annotations = meta["annotations"]
    assert annotations["eks-capture.io/cluster"] == capture.cluster
    assert annotations["eks-capture.io/reason"] == capture.reason
    grace = settings.upload_grace_seconds
    deadline = capture.options.duration_seconds + grace
    expires = datetime.strptime(annotations["eks-capture.io/expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert expires == capture.started_at.replace(microsecond=0) + timedelta(seconds=deadline)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == deadline
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = pod_spec(job)
    assert pod["nodeName"] == node.name
    assert pod["restartPolicy"] == "Never"
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["terminationGracePeriodSeconds"] >= grace
    tolerated = {(t["key"], t["effect"]) for t in pod["tolerations"] if t["operator"] == "Exists"}
    assert {(t.key, t.effect) for t in node.taints} <= tolerated
    capture_c, upload_c = container(job, "capture"), container(job, "upload")
    assert capture_c["image"] == upload_c["image"] == settings.capture_image
    args = capture_c["args"]
    assert args[0] == "capture"
    assert args[args.index("--duration") + 1] == str(capture.options.duration_seconds)
    assert args[args.index("--snaplen") + 1] == str(capture.options.snaplen)
    if capture.options.filter is None:
        assert "--filter" not in args
    else:
        assert args[args.index("--filter") + 1] == capture.options.filter, "the filter is one argv element"
        assert args.count("--filter") == 1
        assert args.index("--filter") == len(args) - 2
    up = upload_c["args"]
    assert up[0] == "upload"
    assert up[up.index("--prefix") + 1] == f"captures/{capture.cluster}/{capture.capture_id}/{node.name}/"
    assert up[up.index("--bucket") + 1] == settings.capture_bucket
    assert int(up[up.index("--budget-bytes") + 1]) < settings.spool_size_bytes
    assert args[args.index("--budget-bytes") + 1] == up[up.index("--budget-bytes") + 1], (
        "one budget, two roles"
    )
    assert int(up[up.index("--grace-seconds") + 1]) == grace
    for item in (capture_c, upload_c):
        env = env_of(item)
        assert env["CAPTURE_ID"] == capture.capture_id
        assert env["CLUSTER_NAME"] == capture.cluster
        assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        assert env.get("INSTANCE_ID") == node.instance_id
        mounts = {m["mountPath"] for m in item["volumeMounts"]}
        assert "/spool" in mounts
        assert "/spool" in args
        assert "/spool" in up


@pytest.mark.parametrize("capture_filter", ["tcp port 443", "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0", None])
@pytest.mark.parametrize(
    "node",
    [NODE, NodeInfo("ip-10-0-0-1.ec2.internal"), NodeInfo("n" * 253, "i-12345678")],
    ids=["tainted", "no-instance-id", "longest-name"],
)
def test_capture_job_is_schema_valid_policy_compliant_and_true_to_the_contract(
    capture_filter: str | None, node: NodeInfo
) -> None:
    capture = spec(capture_filter)
    job = capture_job(capture, node, SETTINGS)
    assert_schema_valid(job)
    assert_security_policy(job, SETTINGS)
    assert_contract(job, capture, node, SETTINGS)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda job: job["spec"].update(backoffLimit="zero"),
        lambda job: pod_spec(job).update(restartPolicy=["Never"]),
        lambda job: container(job, "capture").update(unknownField=True),
    ],
)
def test_schema_check_catches_a_broken_job(break_it: Any) -> None:
    job = capture_job(spec(), NODE, SETTINGS)
    break_it(job)
    with pytest.raises(kubernetes_validate.ValidationError):
        assert_schema_valid(job)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda job: container(job, "capture")["securityContext"].update(privileged=True),
        lambda job: container(job, "upload")["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        lambda job: container(job, "capture")["securityContext"]["capabilities"].update(
            add=["NET_RAW", "SYS_ADMIN"]
        ),
        lambda job: container(job, "upload")["securityContext"].update(readOnlyRootFilesystem=False),
        lambda job: pod_spec(job)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        lambda job: pod_spec(job).update(automountServiceAccountToken=True),
        lambda job: container(job, "capture").update(command=["sh", "-c", "tcpdump"]),
    ],
)
def test_policy_check_catches_an_unsafe_job(break_it: Any) -> None:
    job = capture_job(spec(), NODE, SETTINGS)
    break_it(job)
    with pytest.raises(AssertionError):
        assert_security_policy(job, SETTINGS)


def test_same_capture_and_node_render_the_same_job() -> None:
    assert capture_job(spec(), NODE, SETTINGS) == capture_job(spec(), NODE, SETTINGS)


def test_rendered_jobs_share_no_mutable_parts() -> None:
    first = capture_job(spec(), NODE, SETTINGS)
    pristine = copy.deepcopy(first)
    container(first, "capture")["resources"]["limits"]["cpu"] = "64"
    assert capture_job(spec(), NODE, SETTINGS) == pristine


def test_redelivered_event_names_the_same_jobs_so_a_retry_meets_409() -> None:
    first = capture_id_for_event("a1b2c3d4-event", STARTED)
    again = capture_id_for_event("a1b2c3d4-event", STARTED)
    other = capture_id_for_event("another-event", STARTED)
    assert job_name(first, NODE.name) == job_name(again, NODE.name)
    assert job_name(first, NODE.name) != job_name(other, NODE.name)


def test_reason_annotation_is_bounded() -> None:
    job = capture_job(spec(reason="r" * 5000), NODE, SETTINGS)
    assert len(job["metadata"]["annotations"]["eks-capture.io/reason"]) <= 1024


def test_capture_selector_selects_exactly_this_captures_jobs() -> None:
    capture = spec()
    mine = capture_job(capture, NODE, SETTINGS)["metadata"]["labels"]
    other = capture_job(
        CaptureSpec(capture_id_for_event("x", STARTED), "c", capture.options, "r", STARTED), NODE, SETTINGS
    )
    terms = dict(term.split("=", 1) for term in capture_selector(capture.capture_id).split(","))
    selector = LabelSelector.model_validate({"matchLabels": terms})
    assert selector.matches(mine)
    assert not selector.matches(other["metadata"]["labels"])


def test_region_is_given_to_the_uploader_only_when_known() -> None:
    with_region = env_of(container(capture_job(spec(), NODE, SETTINGS), "upload"))
    without = env_of(
        container(capture_job(spec(), NODE, SETTINGS.model_copy(update={"aws_region": None})), "upload")
    )
    assert with_region["AWS_REGION"] == "us-west-2"
    assert "AWS_REGION" not in without


LABEL = r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?"
node_names = st.from_regex(rf"{LABEL}(\.{LABEL}){{0,14}}", fullmatch=True).filter(lambda n: len(n) <= 253)
taint_keys = st.from_regex(
    r"([a-z0-9]{1,10}\.io/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,20}[A-Za-z0-9])?", fullmatch=True
)
taints = st.builds(
    Taint, key=taint_keys, effect=st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])
)
nodes = st.builds(
    NodeInfo,
    name=node_names,
    instance_id=st.none() | st.from_regex(r"i-[0-9a-f]{17}", fullmatch=True),
    taints=st.lists(taints, max_size=4).map(tuple),
)
filters = st.none() | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .:/_!=<>&|+*%^", min_size=1, max_size=1024
).filter(lambda f: f.strip() != "").map(str.strip)
reasons = (
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=256)
    .filter(lambda r: r.strip() != "")
    .map(str.strip)
)
all_settings = st.builds(
    lambda namespace, grace, limit, rotate: SETTINGS.model_copy(
        update={
            "capture_namespace": namespace,
            "upload_grace_seconds": grace,
            "spool_size_limit": limit,
            "rotate_megabytes": rotate,
        }
    ),
    namespace=st.from_regex(LABEL, fullmatch=True),
    grace=st.integers(10, 3600),
    limit=st.sampled_from(["256Mi", "2Gi", "5G", "1Ti"]),
    rotate=st.integers(1, 32),
)
specs = st.builds(
    lambda event_id, started, duration, snaplen, capture_filter, reason: CaptureSpec(
        capture_id_for_event(event_id, started),
        "shop-prod",
        CaptureOptions(duration_seconds=duration, snaplen=snaplen, filter=capture_filter),
        reason,
        started,
    ),
    event_id=st.uuids().map(str),
    started=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    duration=st.integers(10, 24 * 3600),
    snaplen=st.integers(64, 262144),
    capture_filter=filters,
    reason=reasons,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capture=specs, node=nodes, stack=all_settings)
def test_any_valid_request_yields_a_schema_valid_policy_compliant_job(
    capture: CaptureSpec, node: NodeInfo, stack: Settings
) -> None:
    job = capture_job(capture, node, stack)
    assert_schema_valid(job)
    assert_security_policy(job, stack)
    assert_contract(job, capture, node, stack)


@settings(max_examples=40, deadline=None)
@given(names=st.sets(node_names, min_size=2, max_size=30))
def test_job_names_of_one_capture_never_collide(names: set[str]) -> None:
    capture_id = capture_id_for_event("event-1", STARTED)
    rendered = {job_name(capture_id, name) for name in names}
    assert len(rendered) == len(names)
    assert all(dns1123_label_error(name) is None for name in rendered)
