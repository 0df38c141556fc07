"""The doctor's run: what to check (from the stack or the options), the checks in order, their lines.

Loaded only by ``eks-capture doctor`` (it brings the Kubernetes client and the manifest builder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from rich.console import Console
from rich.markup import escape

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import CaptureId
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from eks_capture.settings import Settings
from eks_capture_cli import checks, quotas
from eks_capture_cli.checks import Check, Fact, Unfetched
from eks_capture_cli.facts import ClusterFacts, EksFacts, bucket_notifications, stack_value
from eks_capture_cli.permissions import GROUPS, NEEDED, REFUSED, ROLE_OUTPUTS, Identity
from eks_capture_cli.stacks import stack_outputs, stack_parameters

DEFAULT_NAMESPACE = "eks-capture"
DEFAULT_SERVICE_ACCOUNT = "eks-capture-uploader"


@dataclass(frozen=True)
class Targets:
    """What the checks are about: from --stack's outputs and parameters, or from the options."""

    cluster: str
    namespace: str
    service_account: str
    bucket: Fact[str]
    roles: dict[Identity, Fact[str]]
    pod_role: Fact[str]
    irsa: bool = False  # the stack's PodCredentials: irsa (no Pod Identity association, no agent needed)


def capture_pod_spec(namespace: str, account: str) -> dict[str, Any]:
    """The pod spec of a capture Job as the trigger builds it (the real manifest builder)."""
    settings = Settings(
        capture_bucket="doctor-bucket",
        capture_table="doctor-table",
        capture_namespace=namespace,
        capture_service_account=account,
    )
    spec = CaptureSpec(
        capture_id=CaptureId("cap-20000101T000000Z-00000000"),
        cluster="doctor",
        options=CaptureOptions.defaults(settings),
        reason="doctor",
        started_at=datetime.now(UTC),
    )
    job = capture_job(spec, NodeInfo("doctor-node"), settings)
    return dict(job["spec"]["template"]["spec"])


def run_checks(targets: Targets) -> list[Check]:
    """Every check, in the order an operator fixes them (AWS first, then the cluster)."""
    cluster, namespace, account = targets.cluster, targets.namespace, targets.service_account
    eks = EksFacts(boto3.client("eks"), cluster)
    kube = ClusterFacts(cluster)
    lines = [checks.authentication_mode(cluster, eks.authentication_mode())]
    entries = {identity: eks.access_entry(role) for identity, role in targets.roles.items()}
    for identity, role in targets.roles.items():
        lines.append(checks.access_entry(cluster, identity, role, entries[identity], GROUPS[identity]))
    for identity in targets.roles:
        needed = kube.access_reviews(entries[identity], namespace, NEEDED[identity])
        refused = kube.access_reviews(entries[identity], namespace, REFUSED[identity])
        lines.append(checks.permissions(identity, namespace, needed, refused, GROUPS[identity]))
    lines.append(checks.namespace_security(namespace, kube.namespace_labels(namespace)))
    found = kube.service_account(namespace, account)
    exists = found if isinstance(found, Unfetched) else found is not None
    lines.append(checks.service_account(namespace, account, exists))
    lines.extend(
        quotas.quotas(namespace, kube.resource_quotas(namespace), capture_pod_spec(namespace, account))
    )
    if targets.irsa:
        lines.append(checks.irsa_role(namespace, account, found))
    else:
        lines.append(checks.pod_identity_agent(cluster, eks.addon(checks.POD_IDENTITY_AGENT)))
        associations = eks.pod_identity_associations(namespace, account)
        lines.append(
            checks.pod_identity_association(cluster, namespace, account, targets.pod_role, associations)
        )
    bucket = targets.bucket
    lines.append(checks.bucket_events(bucket, bucket_notifications(boto3.client("s3"), bucket)))
    return lines


def render(lines: list[Check], console: Console) -> None:
    """Green and red lines; under each red one, the command that fixes it."""
    width = max(len(line.name) for line in lines)
    for line in lines:
        mark = "[green]ok     [/]" if not line.red else f"[bold red]{line.verdict.upper():<7}[/]"
        console.print(f"{mark} {escape(line.name):<{width}}  {escape(line.detail)}")
        if line.red and line.fix:
            console.print(f"        [dim]fix:[/] {escape(line.fix)}")
    red = sum(line.red for line in lines)
    summary = (
        f"[bold red]{red} of {len(lines)} check(s) red[/]"
        if red
        else f"[green]all {len(lines)} checks green[/]"
    )
    console.print(summary)


def _given(value: str | None, what: str) -> Fact[str]:
    return value if value else Unfetched(f"no {what}: pass --stack NAME or --{what}")


def targets_of(
    cluster: str,
    stack: str | None,
    bucket: str | None,
    trigger_role: str | None,
    teardown_role: str | None,
    pod_role: str | None,
    namespace: str | None,
    service_account: str | None,
) -> Targets:
    """Explicit options first, then the stack's outputs and parameters, then the template's defaults."""
    outputs: Fact[dict[str, str]] = stack_outputs(stack) if stack else Unfetched("no --stack given")
    parameters = stack_parameters(stack) if stack else {}
    pod_output = "CapturePodRoleArn" + re.sub("[^A-Za-z0-9]", "", cluster)
    explicit = {Identity.TRIGGER: trigger_role, Identity.TEARDOWN: teardown_role}
    return Targets(
        cluster=cluster,
        namespace=namespace or parameters.get("CaptureNamespace") or DEFAULT_NAMESPACE,
        service_account=service_account or parameters.get("CaptureServiceAccount") or DEFAULT_SERVICE_ACCOUNT,
        bucket=bucket or (stack_value(outputs, "CaptureBucketName") if stack else _given(None, "bucket")),
        roles={
            identity: explicit[identity]
            or (stack_value(outputs, ROLE_OUTPUTS[identity]) if stack else _given(None, f"{identity}-role"))
            for identity in Identity
        },
        pod_role=pod_role or (stack_value(outputs, pod_output) if stack else _given(None, "pod-role")),
        irsa=parameters.get("PodCredentials") == "irsa",
    )
