"""What moto 5.2.5's EKS lacks and the stack deploys: access entries, access policies, add-ons, Pod Identity
associations, and the cluster's ``accessConfig`` (with the access entry EKS makes for the creator). Each is
kept on moto's own cluster object, so deleting the cluster (or moto's reset) forgets it, and answers with
EKS's status codes and messages. localcloud/motoserver.py installs them; the emulated cluster reads the
access entries back through this API (localcloud/kube/access.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.eks import urls
from moto.eks.exceptions import InvalidParameterException, ResourceInUseException, ResourceNotFoundException
from moto.eks.models import Cluster
from moto.eks.responses import EKSResponse
from moto.sts.models import sts_backends

from localcloud.principals import canonical_arn

# The order EKS lets a cluster move in (update-cluster-config refuses going back).
AUTHENTICATION_MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
DEFAULT_AUTHENTICATION_MODE = "CONFIG_MAP"  # CreateCluster through the API or CloudFormation
POLICY_ARN_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
ACCESS_POLICIES = (
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
)
NO_ENTRY = (
    "The specified principalArn could not be found. "
    "You can view your available access entries with 'list-access-entries'."
)


def _not_found(message: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None, message=message
    )


def _state(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The cluster's access entries, add-ons and associations (created on first use)."""
    if not hasattr(cluster, "access_state"):
        cluster.access_state = {"entries": {}, "policies": {}, "addons": {}, "associations": {}}  # type: ignore[attr-defined]
        cluster.access_config = {  # type: ignore[attr-defined]
            "authenticationMode": DEFAULT_AUTHENTICATION_MODE,
            "bootstrapClusterCreatorAdminPermissions": True,
        }
    state: dict[str, dict[str, Any]] = cluster.access_state  # type: ignore[attr-defined]
    return state


class EKSAccessResponse(EKSResponse):
    """moto's EKS responses plus the operations above (routed by botocore's model, as moto routes all)."""

    def _param(self, *names: str) -> Any:
        for name in names:
            value = self._get_param(name)
            if value is not None:
                return value
        return None

    def _cluster(self) -> tuple[Cluster, dict[str, dict[str, Any]]]:
        cluster = self.eks_backend.describe_cluster(self._param("clusterName", "name"))
        return cluster, _state(cluster)

    def _entry(self) -> tuple[Cluster, dict[str, Any]]:
        cluster, state = self._cluster()
        entry = state["entries"].get(self._param("principalArn"))
        if entry is None:
            raise _not_found(NO_ENTRY)
        return cluster, entry

    def create_cluster(self) -> ActionResult:
        """moto's cluster with its ``accessConfig``; with access entries on and the bootstrap permission (the
        default), the caller gets an access entry holding AmazonEKSClusterAdminPolicy, as EKS makes one
        for the cluster's creator (under CONFIG_MAP the creator is mapped out of sight instead: see
        localcloud/kube/access.py)."""
        result = super().create_cluster()
        cluster = self.eks_backend.describe_cluster(self._param("name"))
        state = _state(cluster)
        requested = self._param("accessConfig") or {}
        config = cluster.access_config  # type: ignore[attr-defined]
        if requested.get("authenticationMode"):
            config["authenticationMode"] = requested["authenticationMode"]
        if requested.get("bootstrapClusterCreatorAdminPermissions") is False:
            config["bootstrapClusterCreatorAdminPermissions"] = False
        if config["bootstrapClusterCreatorAdminPermissions"] and config["authenticationMode"] != "CONFIG_MAP":
            creator = self._caller_principal()
            state["entries"][creator] = _entry(cluster, creator, [], None, "STANDARD", {})
            state["policies"][creator] = [
                _association(POLICY_ARN_PREFIX + "AmazonEKSClusterAdminPolicy", {"type": "cluster"})
            ]
        return result

    def _caller_principal(self) -> str:
        """The caller as an access entry names it: its IAM role for an assumed-role session."""
        partition = self.partition
        arn = sts_backends[self.current_account][partition].get_caller_identity(
            self.get_access_key(), self.region
        )[1]
        return canonical_arn(arn)

    def describe_cluster(self) -> ActionResult:
        _state(self.eks_backend.describe_cluster(self._param("name")))
        return super().describe_cluster()

    def update_cluster_config(self) -> ActionResult:
        requested = (self._param("accessConfig") or {}).get("authenticationMode")
        if requested:
            cluster = self.eks_backend.describe_cluster(self._param("name"))
            _state(cluster)
            current = cluster.access_config["authenticationMode"]  # type: ignore[attr-defined]
            if AUTHENTICATION_MODES.index(requested) < AUTHENTICATION_MODES.index(current):
                raise InvalidParameterException(
                    message=f"Unsupported authentication mode update from {current} to {requested}"
                )
            cluster.access_config["authenticationMode"] = requested  # type: ignore[attr-defined]
        return super().update_cluster_config()

    def create_access_entry(self) -> ActionResult:
        cluster, state = self._cluster()
        if cluster.access_config["authenticationMode"] == "CONFIG_MAP":  # type: ignore[attr-defined]
            raise InvalidParameterException(
                message="The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
                "to perform this operation."
            )
        principal = self._param("principalArn")
        if principal in state["entries"]:
            raise ResourceInUseException(
                clusterName=cluster.name, nodegroupName=None, fargateProfileName=None, addonName=None,
                message="The specified access entry resource is already in use on this cluster.",
            )  # fmt: skip
        state["entries"][principal] = _entry(
            cluster,
            principal,
            list(self._param("kubernetesGroups") or []),
            self._param("username"),
            self._param("type") or "STANDARD",
            self._param("tags") or {},
        )
        state["policies"][principal] = []
        return ActionResult({"accessEntry": state["entries"][principal]})

    def describe_access_entry(self) -> ActionResult:
        return ActionResult({"accessEntry": self._entry()[1]})

    def list_access_entries(self) -> ActionResult:
        _, state = self._cluster()
        return ActionResult({"accessEntries": sorted(state["entries"])})

    def update_access_entry(self) -> ActionResult:
        _, entry = self._entry()
        for key in ("kubernetesGroups", "username"):
            if self._param(key) is not None:
                entry[key] = self._param(key)
        entry["modifiedAt"] = utcnow()
        return ActionResult({"accessEntry": entry})

    def delete_access_entry(self) -> ActionResult:
        _, entry = self._entry()
        _, state = self._cluster()
        del state["entries"][entry["principalArn"]]
        state["policies"].pop(entry["principalArn"], None)
        return ActionResult({})

    def associate_access_policy(self) -> ActionResult:
        cluster, entry = self._entry()
        policy_arn = self._param("policyArn")
        if policy_arn.removeprefix(POLICY_ARN_PREFIX) not in ACCESS_POLICIES:
            raise InvalidParameterException(message=f"The policy {policy_arn} does not exist.")
        association = _association(policy_arn, self._param("accessScope"))
        policies = _state(cluster)["policies"][entry["principalArn"]]
        policies[:] = [p for p in policies if p["policyArn"] != policy_arn] + [association]
        return ActionResult(
            {
                "clusterName": cluster.name,
                "principalArn": entry["principalArn"],
                "associatedAccessPolicy": association,
            }
        )

    def disassociate_access_policy(self) -> ActionResult:
        cluster, entry = self._entry()
        policy_arn = self._param("policyArn")
        policies = _state(cluster)["policies"][entry["principalArn"]]
        if all(p["policyArn"] != policy_arn for p in policies):
            raise _not_found(f"The policy {policy_arn} is not associated with the access entry.")
        policies[:] = [p for p in policies if p["policyArn"] != policy_arn]
        return ActionResult({})

    def list_associated_access_policies(self) -> ActionResult:
        cluster, entry = self._entry()
        policies = _state(cluster)["policies"][entry["principalArn"]]
        return ActionResult(
            {
                "clusterName": cluster.name,
                "principalArn": entry["principalArn"],
                "associatedAccessPolicies": policies,
            }
        )

    def create_addon(self) -> ActionResult:
        cluster, state = self._cluster()
        name = self._param("addonName")
        if name in state["addons"]:
            raise ResourceInUseException(
                clusterName=cluster.name, nodegroupName=None, fargateProfileName=None, addonName=name,
                message=f"Addon already exists: {name}",
            )  # fmt: skip
        now = utcnow()
        state["addons"][name] = {
            "addonName": name,
            "clusterName": cluster.name,
            "status": "ACTIVE",
            "addonVersion": self._param("addonVersion") or "v1.3.4-eksbuild.1",
            "health": {"issues": []},
            "addonArn": _arn(cluster, "addon", f"{name}/{uuid.uuid4()}"),
            "createdAt": now,
            "modifiedAt": now,
            "tags": self._param("tags") or {},
        }
        return ActionResult({"addon": state["addons"][name]})

    def describe_addon(self) -> ActionResult:
        cluster, state = self._cluster()
        name = self._param("addonName")
        if name not in state["addons"]:
            raise _not_found(f"No addon: {name} found in cluster: {cluster.name}")
        return ActionResult({"addon": state["addons"][name]})

    def list_addons(self) -> ActionResult:
        return ActionResult({"addons": sorted(self._cluster()[1]["addons"])})

    def delete_addon(self) -> ActionResult:
        cluster, state = self._cluster()
        name = self._param("addonName")
        if name not in state["addons"]:
            raise _not_found(f"No addon: {name} found in cluster: {cluster.name}")
        return ActionResult({"addon": {**state["addons"].pop(name), "status": "DELETING"}})

    def create_pod_identity_association(self) -> ActionResult:
        cluster, state = self._cluster()
        namespace, account = self._param("namespace"), self._param("serviceAccount")
        if any(
            a["namespace"] == namespace and a["serviceAccount"] == account
            for a in state["associations"].values()
        ):
            raise ResourceInUseException(
                clusterName=cluster.name, nodegroupName=None, fargateProfileName=None, addonName=None,
                message="Association already exists",
            )  # fmt: skip
        association_id = "a-" + uuid.uuid4().hex[:17]
        now = utcnow()
        state["associations"][association_id] = {
            "clusterName": cluster.name,
            "namespace": namespace,
            "serviceAccount": account,
            "roleArn": self._param("roleArn"),
            "associationArn": _arn(cluster, "podidentityassociation", association_id),
            "associationId": association_id,
            "tags": self._param("tags") or {},
            "createdAt": now,
            "modifiedAt": now,
        }
        return ActionResult({"association": state["associations"][association_id]})

    def list_pod_identity_associations(self) -> ActionResult:
        _, state = self._cluster()
        wanted = {"namespace": self._param("namespace"), "serviceAccount": self._param("serviceAccount")}
        found = [
            {
                key: a[key]
                for key in ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")
            }
            for a in state["associations"].values()
            if all(value is None or a[key] == value for key, value in wanted.items())
        ]
        return ActionResult({"associations": found})

    def describe_pod_identity_association(self) -> ActionResult:
        cluster, state = self._cluster()
        association = state["associations"].get(self._param("associationId"))
        if association is None:
            raise _not_found(
                f"Association {self._param('associationId')} not found in cluster {cluster.name}"
            )
        return ActionResult({"association": association})

    def delete_pod_identity_association(self) -> ActionResult:
        cluster, state = self._cluster()
        association = state["associations"].pop(self._param("associationId"), None)
        if association is None:
            raise _not_found(
                f"Association {self._param('associationId')} not found in cluster {cluster.name}"
            )
        return ActionResult({"association": association})


def _entry(
    cluster: Cluster,
    principal: str,
    groups: list[str],
    username: str | None,
    kind: str,
    tags: dict[str, str],
) -> dict[str, Any]:
    """An access entry as DescribeAccessEntry answers it."""
    now = utcnow()
    return {
        "clusterName": cluster.name,
        "principalArn": principal,
        "kubernetesGroups": groups,
        "accessEntryArn": _arn(cluster, "access-entry", str(uuid.uuid4())),
        "createdAt": now,
        "modifiedAt": now,
        "tags": tags,
        "username": username or _default_username(principal),
        "type": kind,
    }


def _association(policy_arn: str, scope: dict[str, Any]) -> dict[str, Any]:
    """An access policy association as ListAssociatedAccessPolicies answers it."""
    now = utcnow()
    return {"policyArn": policy_arn, "accessScope": scope, "associatedAt": now, "modifiedAt": now}


def _arn(cluster: Cluster, kind: str, suffix: str) -> str:
    """An ARN of something in ``cluster`` (``arn:...:eks:<region>:<account>:<kind>/<cluster>/<suffix>``)."""
    return f"{cluster.arn.replace(':cluster/', f':{kind}/')}/{suffix}"


def _default_username(principal_arn: str) -> str:
    """EKS's username for an entry that names none: a role's assumed-role session pattern, else the ARN."""
    parts = principal_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/"):
        return (
            f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{parts[5].rsplit('/', 1)[-1]}/{{{{SessionName}}}}"
        )
    return principal_arn


def install() -> None:
    """Route the new paths to the extended responses (before the server builds its EKS app)."""
    dispatch: Callable[..., Any] = EKSAccessResponse().dispatch
    cluster = "{0}/clusters/(?P<name>[^/]+)"
    for path in list(urls.url_paths):
        urls.url_paths[path] = dispatch
    for suffix in (
        "/access-entries$",
        "/access-entries/(?P<principalArn>.+)/access-policies$",
        "/access-entries/(?P<principalArn>.+)/access-policies/(?P<policyArn>.+)$",
        "/access-entries/(?P<principalArn>.+)$",
        "/addons$",
        "/addons/(?P<addonName>[^/]+)$",
        "/pod-identity-associations$",
        "/pod-identity-associations/(?P<associationId>[^/]+)$",
    ):
        urls.url_paths[cluster + suffix] = dispatch
