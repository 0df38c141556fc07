"""The whole local cloud in one object: moto, an emulated EKS cluster, and the template's wiring live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3

from localcloud.access import install_stack
from localcloud.aws import REGION, MotoServer, start_moto_server
from localcloud.clusters import load_cluster_spec, populate
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.router import Router
from localcloud.template import Stack, load_template

LOCAL_LAMBDA_ENV = {"POWERTOOLS_TRACE_DISABLED": "true"}


POD_IDENTITY_AGENT = "eks-pod-identity-agent"


def create_eks_cluster(name: str) -> str:
    """The cluster as eks:DescribeCluster knows it (its endpoint and CA are overridden by settings), set
    up as the deploy guide asks: access entries on (API_AND_CONFIG_MAP), the Pod Identity Agent add-on.

    Returns the ARN of the caller that created it: EKS makes that principal the cluster's admin.
    """
    eks = boto3.client("eks")
    creator = str(boto3.client("sts").get_caller_identity()["Arn"])
    try:
        eks.create_cluster(
            name=name,
            roleArn="arn:aws:iam::123456789012:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": []},
            accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"},
        )
    except eks.exceptions.ResourceInUseException:
        return creator
    eks.create_addon(clusterName=name, addonName=POD_IDENTITY_AGENT)
    return creator


@dataclass
class LocalCloud:
    """Everything the deployed stack would talk to, running on this machine."""

    moto: MotoServer
    kube: KubeEmulator
    stack: Stack
    router: Router
    applied: str
    """What ``kubectl apply`` of the stack's manifests printed when the cluster was set up."""

    @classmethod
    def start(
        cls,
        cluster: str,
        parameters: dict[str, str],
        local_nodes: tuple[str, ...] = (),
        settings_overrides: dict[str, str] | None = None,
        lambda_log: IO[Any] | None = None,
    ) -> LocalCloud:
        """Start moto and the cluster of ``events/clusters/<cluster>.json``, then deploy template.yaml."""
        moto = start_moto_server()
        os.environ.update(moto.env())
        kube = start_kube_emulator(cluster, moto.endpoint_url, REGION, create_eks_cluster(cluster))
        kube.local_env.update(moto.env())
        stack = Stack(load_template(), "eks-capture", {"ClusterNames": cluster, **parameters})
        populate(kube, load_cluster_spec(cluster), local_nodes=local_nodes)
        applied = install_stack(kube, stack)
        environment = {**moto.env(), **kube.env(), **LOCAL_LAMBDA_ENV, **(settings_overrides or {})}
        router = Router(stack, environment=environment, log=lambda_log)
        router.deploy()
        return cls(moto, kube, stack, router, applied)

    def output(self, name: str) -> str:
        """A stack output, as ``aws cloudformation describe-stacks`` would give it."""
        return self.stack.output(name)

    def stop(self) -> None:
        self.router.stop()
        self.kube.stop()
        self.moto.stop()


def workdir(name: str) -> Path:
    """A folder under artifacts/ for what a run leaves behind (logs, reports, merged pcaps)."""
    path = Path(__file__).resolve().parent.parent / "artifacts" / name
    path.mkdir(parents=True, exist_ok=True)
    return path
