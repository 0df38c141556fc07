"""The local stand-ins a benchmark runs against: moto, an emulated cluster, the stack's tables and bucket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from eks_capture.kube import eks
from eks_capture.settings import Settings
from localcloud.aws import REGION, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.kube.resources import NAMESPACES, SERVICEACCOUNTS
from localcloud.provision import provision
from localcloud.template import Stack, load_template

NAMESPACE = "eks-capture"


@contextmanager
def emulated_stack(cluster: str, **settings_env: str) -> Iterator[tuple[KubeEmulator, Settings]]:
    """A fresh moto and cluster, template.yaml's resources, and the functions' settings, with
    ``settings_env`` on top."""
    moto = start_moto_server()
    os.environ.update(moto.env())
    kube = start_kube_emulator(cluster, moto.endpoint_url, REGION, create_eks_cluster(cluster))
    try:
        stack = Stack(
            load_template(),
            "bench",
            {"ClusterNames": cluster, "CaptureImageUri": "example.com/eks-capture@sha256:" + "0" * 64},
        )
        provision(stack)
        env = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"])
        env.update(kube.env(), **settings_env)
        os.environ.update({k: str(v) for k, v in env.items()})
        eks.clear_caches()
        kube.registry.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
        account = {"metadata": {"name": str(env["CAPTURE_SERVICE_ACCOUNT"])}}
        kube.registry.create(SERVICEACCOUNTS, NAMESPACE, account)
        yield kube, Settings.from_env()
    finally:
        kube.stop()
        moto.stop()
        eks.clear_caches()
