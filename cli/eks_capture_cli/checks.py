"""The doctor's checks: pure functions from facts fetched from AWS and the cluster to one line each.

A fact that could not be fetched is an ``Unfetched`` (why), and its check is ``unknown``: red, never green.
Every red line carries the command that fixes it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias, TypeVar

from eks_capture_cli.permissions import Identity, Permission

POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
POD_SECURITY_WARN = "pod-security.kubernetes.io/warn"
API_MODES = ("API", "API_AND_CONFIG_MAP")
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
SESSION_NAME = "{{SessionName}}"
T = TypeVar("T")


class Verdict(StrEnum):
    """Green (ok) or red (fail: the fact is wrong; unknown: it could not be fetched)."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's output."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    @property
    def red(self) -> bool:
        return self.verdict is not Verdict.OK


@dataclass(frozen=True)
class Unfetched:
    """A fact the doctor could not read, and why (the API's own words)."""

    why: str


Fact: TypeAlias = T | Unfetched


def could_not_check(name: str, fact: Unfetched, fix: str = "") -> Check:
    """The red line of a check whose fact could not be read."""
    return Check(name, Verdict.UNKNOWN, f"could not check: {fact.why}", fix)


def authentication_mode(cluster: str, mode: Fact[str]) -> Check:
    """Access entries (which the stack uses) work only when the cluster's mode includes API."""
    name = "authentication mode"
    fix = (
        f"aws eks update-cluster-config --name {cluster} "
        "--access-config authenticationMode=API_AND_CONFIG_MAP"
    )
    if isinstance(mode, Unfetched):
        return could_not_check(name, mode)
    if mode in API_MODES:
        return Check(name, Verdict.OK, f"{mode}: access entries apply")
    return Check(name, Verdict.FAIL, f"{mode}: access entries are ignored, the functions cannot log in", fix)


def expected_username(role_arn: str) -> str:
    """The username EKS gives an entry for a role that names none (the template names none)."""
    parts = role_arn.split(":", 5)
    return f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{parts[5].rsplit('/', 1)[-1]}/{SESSION_NAME}"


def access_entry(
    cluster: str,
    identity: Identity,
    role_arn: Fact[str],
    entry: Fact[Mapping[str, Any] | None],
    groups: Sequence[str],
) -> Check:
    """The identity's role has an entry with the groups rbac.yaml binds and EKS's username for a role."""
    name = f"access entry: {identity}"
    if isinstance(role_arn, Unfetched):
        return could_not_check(name, role_arn)
    wanted = " ".join(groups)
    if isinstance(entry, Unfetched):
        return could_not_check(name, entry)
    if entry is None:
        fix = (
            f"aws eks create-access-entry --cluster-name {cluster} --principal-arn {role_arn} "
            f"--kubernetes-groups {wanted}"
        )
        return Check(name, Verdict.FAIL, f"{role_arn} has no access entry: EKS answers it 401", fix)
    has = list(entry.get("kubernetesGroups") or [])
    username = str(entry.get("username") or "")
    problems = []
    if missing := [g for g in groups if g not in has]:
        problems.append(f"groups {has} lack {missing}")
    if username != expected_username(role_arn):
        problems.append(f"username {username!r} is not EKS's {expected_username(role_arn)!r}")
    if problems:
        fix = (
            f"aws eks update-access-entry --cluster-name {cluster} --principal-arn {role_arn} "
            f"--kubernetes-groups {wanted} --username {shlex.quote(expected_username(role_arn))}"
        )
        return Check(name, Verdict.FAIL, f"{role_arn}: " + "; ".join(problems), fix)
    return Check(name, Verdict.OK, f"{role_arn} -> groups {', '.join(has)}")


def permissions(
    identity: Identity,
    namespace: str,
    needed: Mapping[Permission, Fact[bool]],
    refused: Mapping[Permission, Fact[bool]],
    groups: Sequence[str] = (),
) -> Check:
    """The cluster's own access reviews: each call the identity makes is allowed, none it must not make."""
    name = f"permissions: {identity}"
    fix = "kubectl apply -f deploy/kubernetes/"
    unknown = [
        f"{p}: {answer.why}"
        for p, answer in [*needed.items(), *refused.items()]
        if isinstance(answer, Unfetched)
    ]
    if unknown:
        said = f"could not ask the cluster (SubjectAccessReview) about {unknown[0]}"
        return Check(name, Verdict.UNKNOWN, said, fix)
    denied = [str(p) for p, allowed in needed.items() if not allowed]
    excess = [str(p) for p, allowed in refused.items() if allowed]
    problems = []
    if denied:
        problems.append(f"denied {', '.join(denied)}")
    if excess:
        problems.append(f"allowed what it must not: {', '.join(excess)}")
    if excess:  # deploy/kubernetes/ grants none of these: another binding of the identity's groups does
        pattern = "|".join(groups)
        fix = (
            "kubectl get rolebindings,clusterrolebindings -A -o custom-columns="
            f"KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name,SUBJECTS:.subjects[*].name "
            f"| grep -wE {shlex.quote(pattern)}"
        )
        problems.append("delete the bindings that grant it (found by the command below)")
    if problems:
        return Check(name, Verdict.FAIL, f"in {namespace}: " + "; ".join(problems), fix)
    return Check(
        name,
        Verdict.OK,
        f"{len(needed)} call(s) allowed" + (f", {len(refused)} refused as they must be" if refused else ""),
    )


def namespace_security(namespace: str, labels: Fact[Mapping[str, str] | None]) -> Check:
    """Pod Security must let the namespace run privileged pods (hostNetwork, NET_RAW); a warn level only
    makes the API server answer each capture Job's create with a warning, so it is noted, not red."""
    name = "capture namespace"
    if isinstance(labels, Unfetched):
        return could_not_check(name, labels)
    if labels is None:
        fix = (
            f"kubectl create namespace {namespace} --dry-run=client -o json | kubectl apply -f - && "
            f"kubectl label ns {namespace} {POD_SECURITY_ENFORCE}=privileged"
        )
        return Check(name, Verdict.FAIL, f"namespace {namespace} does not exist", fix)
    level = labels.get(POD_SECURITY_ENFORCE)
    if level in (None, "privileged"):
        said = f"enforces {level}" if level else "has no enforce label (EKS's default: privileged)"
        warned = labels.get(POD_SECURITY_WARN)
        if warned in ("baseline", "restricted"):  # each capture Job is created with a warning; pods run
            said += f", warns at {warned}"
        return Check(name, Verdict.OK, f"{namespace} {said}")
    fix = f"kubectl label ns {namespace} {POD_SECURITY_ENFORCE}=privileged --overwrite"
    return Check(
        name, Verdict.FAIL, f"{namespace} enforces Pod Security {level!r}: capture pods are forbidden", fix
    )


def service_account(namespace: str, account: str, exists: Fact[bool]) -> Check:
    """The capture pods run as this service account: without it the Job gets no pod."""
    name = "capture service account"
    if isinstance(exists, Unfetched):
        return could_not_check(name, exists)
    if exists:
        return Check(name, Verdict.OK, f"{namespace}/{account} exists")
    return Check(
        name, Verdict.FAIL, f"{namespace}/{account} does not exist: every capture Job would get no pod",
        f"kubectl -n {namespace} create serviceaccount {account} --dry-run=client -o json "
        "| kubectl apply -f -",
    )  # fmt: skip


def pod_identity_agent(cluster: str, addon: Fact[Mapping[str, Any] | None]) -> Check:
    """EKS Pod Identity hands the capture pods their credentials only where its agent runs."""
    name = "pod identity agent"
    fix = f"aws eks create-addon --cluster-name {cluster} --addon-name {POD_IDENTITY_AGENT}"
    if isinstance(addon, Unfetched):
        return could_not_check(name, addon, fix)
    if addon is None:
        return Check(
            name,
            Verdict.FAIL,
            f"add-on {POD_IDENTITY_AGENT} is not installed: capture pods get no AWS credentials",
            fix,
        )
    status = str(addon.get("status"))
    if status != "ACTIVE":
        issues = "; ".join(str(i.get("message")) for i in (addon.get("health") or {}).get("issues") or [])
        return Check(
            name,
            Verdict.FAIL,
            f"add-on {POD_IDENTITY_AGENT} is {status}" + (f": {issues}" if issues else ""),
            fix,
        )
    return Check(
        name, Verdict.OK, f"{POD_IDENTITY_AGENT} {addon.get('addonVersion', '')} ACTIVE".replace("  ", " ")
    )


def pod_identity_association(
    cluster: str,
    namespace: str,
    account: str,
    role_arn: Fact[str],
    associations: Fact[Sequence[Mapping[str, Any]]],
) -> Check:
    """The capture service account is associated with the stack's capture pod role."""
    name = "pod identity association"
    if isinstance(role_arn, Unfetched):
        return could_not_check(name, role_arn)
    fix = (
        f"aws eks create-pod-identity-association --cluster-name {cluster} --namespace {namespace} "
        f"--service-account {account} --role-arn {role_arn}"
    )
    if isinstance(associations, Unfetched):
        return could_not_check(name, associations, fix)
    roles = [str(a.get("roleArn")) for a in associations]
    if role_arn in roles:
        return Check(name, Verdict.OK, f"{namespace}/{account} -> {role_arn}")
    if roles:
        return Check(
            name, Verdict.FAIL, f"{namespace}/{account} is associated with {roles[0]}, not {role_arn}", fix
        )
    return Check(
        name, Verdict.FAIL, f"{namespace}/{account} has no association: capture pods cannot upload", fix
    )


def irsa_role(namespace: str, account: str, found: Fact[Mapping[str, Any] | None]) -> Check:
    """Under IRSA (PodCredentials=irsa) the service account names the role its pods assume."""
    name = "pod credentials (IRSA)"
    fix = f"kubectl -n {namespace} annotate serviceaccount {account} {IRSA_ANNOTATION}=<role ARN> --overwrite"
    if isinstance(found, Unfetched):
        return could_not_check(name, found, fix)
    if found is None:
        return Check(name, Verdict.FAIL, f"{namespace}/{account} does not exist", fix)
    role = ((found.get("metadata") or {}).get("annotations") or {}).get(IRSA_ANNOTATION)
    if role:
        return Check(name, Verdict.OK, f"{namespace}/{account} -> {role}")
    return Check(
        name, Verdict.FAIL, f"{namespace}/{account} has no {IRSA_ANNOTATION}: capture pods cannot upload", fix
    )


def bucket_events(bucket: Fact[str], configuration: Fact[Mapping[str, Any]]) -> Check:
    """The indexer hears of new capture files only through the bucket's EventBridge notifications."""
    name = "bucket events"
    if isinstance(bucket, Unfetched):
        return could_not_check(name, bucket)
    if isinstance(configuration, Unfetched):
        return could_not_check(name, configuration)
    if "EventBridgeConfiguration" in configuration:
        return Check(name, Verdict.OK, f"{bucket} sends its events to EventBridge")
    kept = {k: v for k, v in configuration.items() if k != "ResponseMetadata"}
    fix = (
        f"aws s3api put-bucket-notification-configuration --bucket {bucket} --notification-configuration "
        + shlex.quote(json.dumps({**kept, "EventBridgeConfiguration": {}}))
    )
    return Check(
        name, Verdict.FAIL, f"{bucket} does not send events to EventBridge: no capture file is indexed", fix
    )
