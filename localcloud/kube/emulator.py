"""The Kubernetes half of the local cloud: API server, controllers and kubelets in this process."""

from __future__ import annotations

import base64
import contextlib
import functools
import itertools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from localcloud.kube.access import EksAccessEntries
from localcloud.kube.admission import Webhooks
from localcloud.kube.auth import TokenVerifier
from localcloud.kube.authorization import Authorizer
from localcloud.kube.behaviours import PodBehaviour
from localcloud.kube.bootstrap import bootstrap_cluster_role_bindings, bootstrap_cluster_roles
from localcloud.kube.clock import rfc3339
from localcloud.kube.controllers import (
    DaemonSetController,
    JobController,
    collect_garbage,
    expire_finished_jobs,
    finalize_namespaces,
    index_by_owner,
)
from localcloud.kube.endpointslices import EndpointSliceController
from localcloud.kube.faults import CallCounter, Faults
from localcloud.kube.kubelet import Kubelet
from localcloud.kube.nodes import node_object, ready_condition
from localcloud.kube.quota import quota_status
from localcloud.kube.registry import DeleteOptions, Registry
from localcloud.kube.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    NAMESPACES,
    NODES,
    PODS,
    RESOURCEQUOTAS,
    SERVICES,
    ResourceType,
)
from localcloud.kube.server import ApiServer, HttpsFront
from localcloud.kube.store import Obj, Store
from localcloud.kube.tls import issue_server_credentials
from localcloud.kubectl import Kubectl

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_instance_ids = itertools.count(1)


class KubeEmulator:
    """A running emulated EKS cluster. Build it with ``start_kube_emulator``; ``stop()`` when done."""

    def __init__(
        self,
        cluster_name: str,
        sts_endpoint_url: str,
        region: str,
        creator_arn: str,
        tick_seconds: float = 0.05,
    ) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self.tick_seconds = tick_seconds
        self._dir = tempfile.TemporaryDirectory(prefix=f"kube-{cluster_name}-")
        self.workdir = Path(self._dir.name)
        self.store = Store()
        self.registry = Registry(self.store)
        self.authorizer = Authorizer(self.store)
        self.faults = Faults()
        self.calls = CallCounter()
        self.kubelet = Kubelet(self.registry, self.workdir / "pods")
        self._jobs = JobController(self.registry)
        self._daemonsets = DaemonSetController(self.registry)
        self._endpoint_slices = EndpointSliceController(self.registry)
        self._api = ApiServer(
            self.registry,
            TokenVerifier(cluster_name, sts_endpoint_url),
            EksAccessEntries(cluster_name, sts_endpoint_url, region, creator_arn),
            self.authorizer,
            self.faults,
            self.calls,
            self.kubelet.read_log,
        )
        credentials = issue_server_credentials(cluster_name)
        self.ca_pem = credentials.ca_pem
        self.ca_file = self.workdir / "ca.crt"
        self.ca_file.write_text(credentials.ca_pem)
        cert_file, key_file = self.workdir / "tls.crt", self.workdir / "tls.key"
        cert_file.write_text(credentials.cert_pem + credentials.ca_pem)
        key_file.write_text(credentials.key_pem)
        os.chmod(key_file, 0o600)
        self._bootstrap()
        self._front = HttpsFront(self._api, str(cert_file), str(key_file))
        self.url = f"https://127.0.0.1:{self._front.port}"
        self._tick_lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop = threading.Thread(target=self._run_loop, name="kube-controllers", daemon=True)
        self._loop.start()

    # set-up -------------------------------------------------------------------------------------
    def _bootstrap(self) -> None:
        for name in SYSTEM_NAMESPACES:
            self.registry.create(NAMESPACES, None, {"metadata": {"name": name}})
        for role in bootstrap_cluster_roles():
            self.registry.create(CLUSTERROLES, None, role)
        for binding in bootstrap_cluster_role_bindings():
            self.registry.create(CLUSTERROLEBINDINGS, None, binding)
        self.registry.reserved_service_ips.update({"172.20.0.1", "172.20.0.10"})
        self.registry.create(
            SERVICES,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "172.20.0.1",
                    "ports": [{"name": "https", "port": 443, "targetPort": 443}],
                },
            },
        )
        self.registry.create(
            SERVICES,
            "kube-system",
            {
                "metadata": {
                    "name": "kube-dns",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                },
                "spec": {
                    "clusterIP": "172.20.0.10",
                    "selector": {"k8s-app": "kube-dns"},
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    ],
                },
            },
        )

    @property
    def auth_failures(self) -> list[str]:
        """Why each rejected token was rejected (the client only sees 401), oldest first."""
        return self._api.auth_failures

    @property
    def webhooks(self) -> Webhooks:
        """The validating webhooks (``webhooks.deny(name, message, resources, ...)``), none at first."""
        return self.registry.admission.webhooks

    @property
    def local_env(self) -> dict[str, str]:
        """Variables every local pod process gets before its own ``env`` (e.g. the moto endpoint)."""
        return self.kubelet.local_env

    @property
    def image_entrypoints(self) -> dict[str, list[str]]:
        """Image (without tag) -> argv used when a local container has no ``command``."""
        return self.kubelet.image_entrypoints

    def add_node(
        self,
        name: str | None = None,
        *,
        instance_id: str | None = None,
        zone: str | None = None,
        ip: str | None = None,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        ready: bool = True,
        local: bool = False,
        instance_type: str = "m5.large",
        nodegroup: str = "default",
        allocatable: Mapping[str, str] | None = None,
    ) -> Obj:
        """Register a node; ``local=True`` makes this machine run its pods' containers as processes;
        ``allocatable`` overrides what its kubelet admits (``{"pods": "2"}``: EKS's max-pods)."""
        number = next(_instance_ids)
        ip = ip or f"10.0.{number // 250}.{number % 250 + 4}"
        zone = zone or f"{self.region}{'abc'[number % 3]}"
        name = name or f"ip-{ip.replace('.', '-')}.{self.region}.compute.internal"
        instance_id = instance_id or f"i-{number:017x}"
        body = node_object(
            name,
            instance_id=instance_id,
            zone=zone,
            ip=ip,
            labels=labels,
            taints=taints,
            ready=ready,
            instance_type=instance_type,
            nodegroup=nodegroup,
            allocatable=allocatable,
        )
        if local:
            self.kubelet.local_nodes.add(name)
        return self.registry.create(NODES, None, body)

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Flip the node's Ready condition (a NotReady node's kubelet does nothing)."""

        def change(node: Obj) -> None:
            conditions = [c for c in node["status"]["conditions"] if c["type"] != "Ready"]
            node["status"]["conditions"] = [*conditions, ready_condition(ready, rfc3339(time.time()))]

        self.registry.mutate(NODES, None, name, change)

    def remove_node(self, name: str) -> None:
        """Delete the node; the pod garbage collector force-deletes the pods bound to it."""
        self.registry.delete(NODES, None, name)
        for pod in self.store.items(PODS):
            if pod["spec"].get("nodeName") == name and pod.get("status", {}).get("startTime"):
                self.registry.delete(
                    PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], DeleteOptions(0)
                )

    def script_pods(self, behaviour: PodBehaviour, **filters: Any) -> None:
        """New pods matching ``node``/``namespace``/``labels``/``name_prefix`` follow ``behaviour``."""
        self.kubelet.script(behaviour, **filters)

    # clients ------------------------------------------------------------------------------------
    def configuration(self, token: str) -> client.Configuration:
        """A client Configuration for this cluster with a bearer ``token``, verifying TLS against the CA."""
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.verify_ssl = True
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return configuration

    def write_kubeconfig(self, path: str | os.PathLike[str], token: str) -> Path:
        """A kubeconfig (JSON, which YAML loaders read) with this cluster, its CA and ``token``."""
        context = f"arn:aws:eks:{self.region}:cluster/{self.cluster_name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        target = Path(path)
        target.write_text(json.dumps(config, indent=2))
        return target

    def kubectl(self, token: str) -> Kubectl:
        """Debian's kubectl as the caller whose EKS ``token`` is given (its own kubeconfig and cache)."""
        home = Path(tempfile.mkdtemp(prefix="kubectl-", dir=self.workdir))
        return Kubectl(self.write_kubeconfig(home / "kubeconfig", token), home / "cache")

    def env(self) -> dict[str, str]:
        """The settings that point ``eks_capture.kube.eks`` here for this cluster (see ``combined_env``)."""
        return combined_env([self])

    # direct store access ------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str | None, body: Obj) -> Obj:
        """Create an object without HTTP (same defaulting and validation): seeding benchmarks and tests."""
        return self.registry.create(rtype, namespace, body)

    def objects(self, rtype: ResourceType, namespace: str | None = None) -> list[Obj]:
        """Stored objects of a kind (JSON dicts as served), for assertions."""
        return self.store.items(rtype, namespace)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.store.get(rtype, namespace, name)

    # control loop -------------------------------------------------------------------------------
    def tick(self) -> None:
        """One pass of every controller and kubelet."""
        with self._tick_lock:
            now = time.time()
            pods = self.store.items(PODS)
            by_owner = index_by_owner(pods)
            collect_garbage(self.registry, by_owner)
            finalize_namespaces(self.registry)
            self._jobs.sync(by_owner, now)
            nodes = self.store.items(NODES)
            self._daemonsets.sync(index_by_owner(self.store.items(PODS)), nodes, now)
            self.kubelet.sync(now)
            self._endpoint_slices.sync()
            expire_finished_jobs(self.registry, now)
            self._refresh_quotas()

    def _refresh_quotas(self) -> None:
        """The quota controller: each ResourceQuota's status shows its hard limits and the usage."""
        for quota in self.store.items(RESOURCEQUOTAS):
            meta = quota["metadata"]
            status = quota_status(quota, self.store.items(PODS, meta["namespace"]))
            if status != quota.get("status"):
                change = functools.partial(_set_status, status=status)
                self.registry.mutate(RESOURCEQUOTAS, meta["namespace"], meta["name"], change)

    def settle(self, timeout: float = 5.0) -> None:
        """Tick until a pass changes nothing (or ``timeout``): the cluster is quiet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.store.revision
            self.tick()
            if self.store.revision == before:
                return

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Tick until ``predicate()`` holds; TimeoutError naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout}s")
            self.tick()
            time.sleep(self.tick_seconds)

    def _run_loop(self) -> None:
        """Tick forever; with many objects, rest twice as long as a tick took, so the API keeps the CPU."""
        pause = self.tick_seconds
        while not self._stopping.wait(pause):
            started = time.monotonic()
            with contextlib.suppress(
                Exception
            ):  # a controller error must not kill the loop; next tick retries
                self.tick()
            pause = max(self.tick_seconds, 2 * (time.monotonic() - started))

    def stop(self) -> None:
        """Stop serving, stop the loop, kill local pod processes, remove the work directory."""
        self._stopping.set()
        self._loop.join(timeout=5)
        self._front.stop()
        self.kubelet.stop()
        self._dir.cleanup()


def _set_status(obj: Obj, status: Obj) -> None:
    obj["status"] = status


def combined_env(emulators: Sequence[KubeEmulator]) -> dict[str, str]:
    """The endpoint and CA overrides for several clusters at once, as ``cluster=value`` pairs."""
    return {
        "EKS_ENDPOINT_OVERRIDE": ",".join(f"{e.cluster_name}={e.url}" for e in emulators),
        "EKS_CA_OVERRIDE_FILE": ",".join(f"{e.cluster_name}={e.ca_file}" for e in emulators),
    }


def start_kube_emulator(
    cluster_name: str,
    sts_endpoint_url: str,
    region: str,
    creator_arn: str,
    tick_seconds: float = 0.05,
) -> KubeEmulator:
    """Start the Kubernetes side of EKS cluster ``cluster_name``, which must exist in the local EKS API at
    ``sts_endpoint_url`` (moto serves STS and EKS there): tokens are verified against its STS, callers
    mapped by its access entries (localcloud/kube/access.py).

    Authorization is EKS's: default deny. ``creator_arn`` is the IAM principal that created the cluster:
    EKS gave it an access entry (AmazonEKSClusterAdminPolicy) if the cluster was created with access
    entries on, and maps it out of sight under CONFIG_MAP. Add others through the EKS API
    (``create_access_entry``, ``associate_access_policy``).
    """
    return KubeEmulator(cluster_name, sts_endpoint_url, region, creator_arn, tick_seconds)
