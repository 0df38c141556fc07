"""Findings on real traffic name the pods that held the addresses when the capture started.

Real packets between network namespaces (tests/fixtures/traffic.py: SYNs to one port dropped, a DNS
server answering SERVFAIL/NXDOMAIN or nothing) whose addresses belong to pods in the emulated cluster;
the trigger snapshots the cluster, the pcap lands in the capture bucket, the indexer (through the
template's wiring) and ``eks-capture analyze --context`` both say which pod each finding is about.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from eks_capture.captures import trigger
from eks_capture.captures.context import context_key
from eks_capture.captures.deps import Deps
from eks_capture.pcap import analyze_file
from eks_capture_cli import app
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import PODS
from localcloud.netns import SUBNET_PREFIX
from localcloud.router import Router
from tests.events import load_event
from tests.fixtures.traffic import Captures

pytestmark = pytest.mark.root

CLUSTER = "shop-prod"
NODE = "ip-192-168-12-34.us-west-2.compute.internal"
CLIENT_IP = f"{SUBNET_PREFIX}.2"  # the traffic fixture's hosts: client, server, router in that order
SERVER_IP = f"{SUBNET_PREFIX}.3"
SERVER_POD = "api-7f9c6d5b8-k2x9q"
CLIENT_POD = "web-5d8b9c7f6-p4m2n"


def _pod(name: str, workload: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": workload, "uid": f"uid-{workload}"}
            ],
        },
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.36"}],
        },
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
    }


@pytest.fixture
def capture_id(deps: Deps, shop: KubeEmulator) -> str:
    """A capture started on NODE while the traffic's two hosts are pods of the payments namespace."""
    shop.create(PODS, "payments", _pod(SERVER_POD, "api-7f9c6d5b8", SERVER_IP))
    shop.create(PODS, "payments", _pod(CLIENT_POD, "web-5d8b9c7f6", CLIENT_IP))
    outcome = trigger.handle(load_event("start-capture-nodes"), deps)
    assert outcome.status == "running", outcome.message
    assert outcome.capture_id is not None
    return outcome.capture_id


PODS_BY_IP = {SERVER_IP: f"payments/{SERVER_POD}", CLIENT_IP: f"payments/{CLIENT_POD}"}
UNANSWERED = re.compile(rf"\d+ SYNs to payments/{SERVER_POD} \({re.escape(SERVER_IP)}\):5003 never answered")


def test_the_indexer_names_the_pods_a_capture_s_findings_are_about(
    deps: Deps, shop: KubeEmulator, router: Router, faulty_captures: Captures, capture_id: str
) -> None:
    pcap = faulty_captures["ethernet.pcap"]
    key = f"captures/{CLUSTER}/{capture_id}/{NODE}/20261125T031200Z-00001.pcap"
    boto3.client("s3").put_object(Bucket=deps.settings.capture_bucket, Key=key, Body=pcap.read_bytes())

    invocations = router.drain()

    assert [i.error for i in invocations] == [None] * len(invocations)
    [item] = deps.store.files_of_capture(capture_id)
    named = analyze_file(pcap, context=PODS_BY_IP)
    assert [f["message"] for f in item.summary["findings"]] == [f.message for f in named.findings]
    assert any(UNANSWERED.match(f.message) for f in named.findings)
    assert any(f.kind == "dns.servfail" and PODS_BY_IP[SERVER_IP] in f.message for f in named.findings)
    talkers = {t["address"]: t["name"] for t in item.summary["top_talkers"]}
    assert (talkers[SERVER_IP], talkers[CLIENT_IP]) == (PODS_BY_IP[SERVER_IP], PODS_BY_IP[CLIENT_IP])


def test_the_cli_names_the_pods_from_a_downloaded_context(
    deps: Deps, faulty_captures: Captures, capture_id: str, tmp_path: Path
) -> None:
    context = tmp_path / "context.json.gz"
    boto3.client("s3").download_file(
        deps.settings.capture_bucket, context_key(CLUSTER, capture_id), str(context)
    )
    pcap = faulty_captures["ethernet.pcap"]

    result = CliRunner().invoke(
        app, ["analyze", str(pcap), "--context", str(context)], env={"COLUMNS": "300"}
    )

    assert result.exit_code == 0, result.output
    assert UNANSWERED.search(result.stdout)
