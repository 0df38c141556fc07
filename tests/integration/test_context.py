"""A started capture keeps who-was-who beside its pcaps: the emulator's pods, services and nodes, bounded.

Everything real over HTTP: the sample cluster ``shop-prod`` in the Kubernetes emulator, the capture
bucket and table in moto, the trigger's sample events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from eks_capture.captures import indexer, trigger
from eks_capture.captures.context import (
    ClusterContext,
    Limits,
    context_key,
    decode,
    refresh_context,
    snapshot,
)
from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Outcome
from eks_capture.kube.calls import Cluster
from eks_capture.kube.nodes import NodeInfo
from localcloud.kube import KubeEmulator
from localcloud.kube.registry import DeleteOptions
from localcloud.kube.resources import NAMESPACES, NODES, PODS, SERVICES
from tests.events import load_event
from tests.fixtures.cluster import revoke

CLUSTER = "shop-prod"
CAPTURE_NAMESPACE = "eks-capture"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"


def _stored(deps: Deps, outcome: Outcome) -> ClusterContext:
    assert outcome.capture_id is not None
    body = boto3.client("s3").get_object(
        Bucket=deps.settings.capture_bucket, Key=context_key(CLUSTER, outcome.capture_id)
    )["Body"]
    return decode(body.read())


def _context_keys(deps: Deps) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=deps.settings.capture_bucket, Prefix="captures/")
    return [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("context.json.gz")]


def _pod_ips(pod: dict[str, Any]) -> list[str]:
    return [entry["ip"] for entry in pod["status"].get("podIPs") or []]


def _add_pods(shop: KubeEmulator, namespace: str, count: int) -> None:
    shop.registry.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    for index in range(count):
        ip = f"10.{40 + index // 65536}.{index // 256 % 256}.{index % 256}"
        shop.registry.create(
            PODS,
            namespace,
            {
                "metadata": {"name": f"web-{index}"},
                "spec": {
                    "nodeName": "ip-192-168-12-34.us-west-2.compute.internal",
                    "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.36"}],
                },
                "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
            },
        )


def test_a_started_capture_stores_the_pods_services_and_nodes_the_cluster_has(
    deps: Deps, shop: KubeEmulator
) -> None:
    pods_before = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): _pod_ips(p) for p in shop.objects(PODS)
    }
    services = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): [s["spec"]["clusterIP"]]
        for s in shop.objects(SERVICES)
    }

    outcome = trigger.handle(load_event("alarm-single-metric-instance"), deps)

    assert outcome.status == "running", outcome.message
    context = _stored(deps, outcome)
    assert (context.cluster, context.capture_id, context.truncated) == (CLUSTER, outcome.capture_id, [])
    stored_pods = {(p.namespace, p.name): p.ips for p in context.pods if p.namespace != CAPTURE_NAMESPACE}
    assert stored_pods == pods_before
    assert {(s.namespace, s.name): s.cluster_ips for s in context.services} == services
    nodes = [NodeInfo.from_kubernetes(n) for n in shop.objects(NODES)]
    assert {(n.name, n.instance_id, n.zone, tuple(n.ips)) for n in context.nodes} == {
        (n.name, n.instance_id, n.zone, tuple(a.address for a in n.addresses if a.type == "InternalIP"))
        for n in nodes
    }


def test_the_cluster_dns_service_is_marked_and_its_ports_kept(deps: Deps, shop: KubeEmulator) -> None:
    [dns] = [s for s in shop.objects(SERVICES) if s["metadata"]["labels"].get("k8s-app") == "kube-dns"]

    context = _stored(deps, trigger.handle(load_event("alarm-single-metric-instance"), deps))

    marked = [s for s in context.services if s.cluster_dns]
    assert [(s.namespace, s.name) for s in marked] == [
        (dns["metadata"]["namespace"], dns["metadata"]["name"])
    ]
    assert sorted((p.port, p.protocol) for p in marked[0].ports) == sorted(
        (p["port"], p["protocol"]) for p in dns["spec"]["ports"]
    )


def test_the_snapshot_lists_each_kind_in_pages_never_one_call_per_pod(deps: Deps, shop: KubeEmulator) -> None:
    _add_pods(shop, "web", 1200)
    pods = len(shop.objects(PODS))
    shop.calls.reset()

    outcome = trigger.handle(load_event("start-capture-all"), deps)

    assert outcome.status == "running", outcome.message
    assert len(_stored(deps, outcome).pods) >= pods
    assert shop.calls["list", "pods"] == math.ceil(pods / 500)
    assert shop.calls["list", "services"] == 1
    assert shop.calls["list", "nodes"] == 1  # the trigger's own listing, reused
    assert shop.calls.total("get", "pods") == 0


def test_an_alarm_that_names_pods_lists_them_once_for_its_nodes_and_its_context(
    deps: Deps, shop: KubeEmulator
) -> None:
    shop.calls.reset()

    outcome = trigger.handle(load_event("alarm-container-insights-pod"), deps)

    assert outcome.status == "running", outcome.message
    assert shop.calls["list", "pods"] == 1
    assert {(p.namespace, p.name) for p in _stored(deps, outcome).pods} >= {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in shop.objects(PODS, "payments")
    }


def test_a_snapshot_over_its_limit_keeps_the_limit_and_names_the_cut_kind(shop: KubeEmulator) -> None:
    _add_pods(shop, "web", 30)

    context = snapshot(Cluster(CLUSTER), taken_at=_now(), limits=Limits(pods=10, services=50))

    assert len(context.pods) == 10
    assert context.truncated == ["pods"]
    assert len(context.services) == len(shop.objects(SERVICES))


def test_a_refused_capture_stores_no_context(deps: Deps, shop: KubeEmulator) -> None:
    first = trigger.handle(load_event("alarm-single-metric-instance"), deps)
    again = load_event("alarm-single-metric-instance")
    again["id"] = "the-alarm-flaps"

    refused = trigger.handle(again, deps)

    assert (first.status, refused.status) == ("running", "rejected")
    assert _context_keys(deps) == [context_key(CLUSTER, str(first.capture_id))]


def test_a_cluster_that_refuses_the_snapshot_still_gets_its_capture(deps: Deps, shop: KubeEmulator) -> None:
    revoke(shop, "list", "services")

    outcome = trigger.handle(load_event("alarm-single-metric-instance"), deps)

    assert outcome.status == "running"
    assert _context_keys(deps) == []


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_refreshed_context_also_names_pods_that_came_while_the_capture_ran(
    deps: Deps, shop: KubeEmulator
) -> None:
    outcome = trigger.handle(load_event("alarm-single-metric-instance"), deps)
    capture_id = str(outcome.capture_id)
    [leaving] = [p for p in shop.objects(PODS, "payments") if p["metadata"]["name"].startswith("checkout")][
        :1
    ]
    reused_ip = _pod_ips(leaving)[0]
    shop.registry.delete(PODS, "payments", leaving["metadata"]["name"], DeleteOptions(grace_period_seconds=0))
    _add_pods(shop, "late", 2)
    [arriving] = [p for p in shop.objects(PODS, "late")][:1]
    shop.registry.mutate(PODS, "late", arriving["metadata"]["name"], _with_ip(reused_ip))

    refreshed = refresh_context(
        boto3.client("s3"),
        deps.settings.capture_bucket,
        Cluster(CLUSTER),
        capture_id,
        now=_now(),
    )

    stored = _stored(deps, outcome)
    assert stored == refreshed
    assert stored.refreshed_at is not None
    assert stored.refreshed_at > stored.taken_at
    assert {p.name for p in stored.pods if p.namespace == "late"} == {
        p["metadata"]["name"] for p in shop.objects(PODS, "late")
    }
    assert (
        stored.names()[reused_ip]
        == f"payments/{leaving['metadata']['name']} or late/{arriving['metadata']['name']}"
    )


def _with_ip(ip: str) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        pod["status"]["podIP"] = ip
        pod["status"]["podIPs"] = [{"ip": ip}]

    return change


class _CountingS3:
    """The real S3 client, counting the objects read (a spy on the indexer's reads, not a stand-in)."""

    def __init__(self) -> None:
        self._s3 = boto3.client("s3")
        self.reads: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.reads.append(kwargs["Key"])
        return self._s3.get_object(**kwargs)


def test_the_indexer_reads_a_capture_s_context_once_for_all_its_files(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(load_event("alarm-single-metric-instance"), deps)
    capture_id, bucket = str(outcome.capture_id), deps.settings.capture_bucket
    pcap = (Path(__file__).resolve().parents[1] / "fixtures" / "captures" / "any-nano-head.pcap").read_bytes()
    event = load_event("s3-object-created-notification")
    [record] = event["Records"]
    event["Records"] = []
    for seq in (1, 2, 3):
        key = f"captures/{CLUSTER}/{capture_id}/{NODE_A}/20261125T110000Z-{seq:05d}.pcap"
        put = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=pcap)
        copy = json.loads(json.dumps(record))
        copy["s3"]["bucket"]["name"], copy["s3"]["object"]["key"] = bucket, key
        copy["s3"]["object"]["eTag"] = put["ETag"].strip('"')
        event["Records"].append(copy)
    s3 = _CountingS3()

    outcomes = indexer.handle(event, deps.store, s3)

    assert [o.status for o in outcomes] == ["indexed"] * 3
    assert s3.reads.count(context_key(CLUSTER, capture_id)) == 1
