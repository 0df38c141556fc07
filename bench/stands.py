"""The local stand-ins a benchmark runs against: moto, an emulated cluster, the stack's tables and bucket."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, TypeVar

from eks_capture.kube import eks
from eks_capture.settings import Settings
from localcloud.aws import REGION, MotoServer, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.kube import KubeEmulator, fieldvalidation, start_kube_emulator
from localcloud.kube.resources import ALL, NAMESPACES, SERVICEACCOUNTS, ResourceType
from localcloud.provision import provision
from localcloud.template import Stack, load_template

NAMESPACE = "eks-capture"


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU seconds (user + system) that process ``pid`` (every thread), or one ``thread`` of it, has used."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EmulatorProcess:
    """The Kubernetes emulator in a process of its own, as a remote API server is to a Lambda: its request
    handling, controllers and kubelets take no share of the caller's GIL, and its CPU is its own
    (``cpu_seconds(emulator.pid)``). It is the same emulator, with every check it makes in-process."""

    def __init__(self, cluster: str, sts_endpoint_url: str, creator_arn: str) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["localcloud.kube"])
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_emulator,
            args=(child, cluster, sts_endpoint_url, creator_arn),
            name=f"kube-emulator-{cluster}",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._env: dict[str, str] = self._answer()

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    def env(self) -> dict[str, str]:
        """The settings that point ``eks_capture.kube.eks`` at this cluster (``KubeEmulator.env``)."""
        return dict(self._env)

    def add_node(self, name: str) -> None:
        self._call("add_node", name)

    def add_latency(self, seconds: float) -> None:
        """Every request is answered ``seconds`` late (``Faults.add_latency``)."""
        self._call("add_latency", seconds)

    def create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any]) -> None:
        """Create an object without HTTP (``KubeEmulator.create``)."""
        self._call("create", rtype, namespace, body)

    def controllers_cpu(self) -> float:
        """CPU seconds of the emulator's control loop so far: its controllers and kubelets, which a real
        cluster runs on other machines than its API server's."""
        return float(self._call("controllers_cpu"))

    def stop(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()

    def _call(self, method: str, *args: Any) -> Any:
        self._conn.send((method, args))
        return self._answer()

    def _answer(self) -> Any:
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"the emulator process failed: {value}")
        return value


def _serve_emulator(conn: Connection, cluster: str, sts_endpoint_url: str, creator_arn: str) -> None:
    """The emulator process: start the cluster, then run the calls the pipe brings until it brings None."""
    kube = start_kube_emulator(cluster, sts_endpoint_url, REGION, creator_arn)
    for rtype in ALL:  # the schema a long-running API server holds, imported before the first request
        fieldvalidation.check(rtype, {})
    loop = next(t for t in threading.enumerate() if t.name == "kube-controllers")
    calls: dict[str, Callable[..., object]] = {
        "add_node": kube.add_node,
        "add_latency": kube.faults.add_latency,
        "create": kube.create,
        "controllers_cpu": lambda: cpu_seconds(os.getpid(), loop.native_id),
    }
    try:
        conn.send((True, kube.env()))
        while (call := conn.recv()) is not None:
            method, args = call
            try:
                answer = calls[method](*args)
            except Exception as error:  # the caller raises it with the emulator's words
                conn.send((False, repr(error)))
            else:
                conn.send((True, answer))
    finally:
        kube.stop()


def provision_functions(
    cluster: str, kube_env: dict[str, str], settings_env: dict[str, str]
) -> dict[str, Any]:
    """template.yaml's resources on the running moto; the functions' environment, ``settings_env`` on top."""
    stack = Stack(
        load_template(),
        "bench",
        {"ClusterNames": cluster, "CaptureImageUri": "example.com/eks-capture@sha256:" + "0" * 64},
    )
    provision(stack)
    env = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(kube_env, **settings_env)
    os.environ.update({k: str(v) for k, v in env.items()})
    eks.clear_caches()
    return dict(env)


class _Emulator(Protocol):
    """What the stands need of an emulator, whether in this process (``KubeEmulator``) or its own."""

    def env(self) -> dict[str, str]: ...

    def create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any]) -> object: ...

    def stop(self) -> None: ...


_E = TypeVar("_E", bound=_Emulator)


@contextmanager
def _stack(
    cluster: str, start: Callable[[MotoServer], _E], settings_env: dict[str, str]
) -> Iterator[tuple[_E, MotoServer, Settings]]:
    """A fresh moto, the emulator ``start`` brings up against it, template.yaml's resources, and the
    functions' settings: the one body of ``emulated_stack`` and ``separate_stack``."""
    moto = start_moto_server()
    try:
        os.environ.update(moto.env())
        kube = start(moto)
        try:
            env = provision_functions(cluster, kube.env(), settings_env)
            kube.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
            account = {"metadata": {"name": str(env["CAPTURE_SERVICE_ACCOUNT"])}}
            kube.create(SERVICEACCOUNTS, NAMESPACE, account)
            yield kube, moto, Settings.from_env()
        finally:
            kube.stop()
    finally:  # moto too when the emulator could not start
        moto.stop()
        eks.clear_caches()


@contextmanager
def emulated_stack(cluster: str, **settings_env: str) -> Iterator[tuple[KubeEmulator, Settings]]:
    """A fresh moto and cluster, template.yaml's resources, and the functions' settings, with
    ``settings_env`` on top."""

    def start(moto: MotoServer) -> KubeEmulator:
        return start_kube_emulator(cluster, moto.endpoint_url, REGION, create_eks_cluster(cluster))

    with _stack(cluster, start, settings_env) as (kube, _, settings):
        yield kube, settings


@dataclass(frozen=True)
class SeparateStands:
    """The stand-ins of ``separate_stack``, each in its own process, and the functions' settings."""

    kube: EmulatorProcess
    moto: MotoServer
    settings: Settings


@contextmanager
def separate_stack(cluster: str, **settings_env: str) -> Iterator[SeparateStands]:
    """``emulated_stack`` with the emulator in a process of its own (``EmulatorProcess``)."""

    def start(moto: MotoServer) -> EmulatorProcess:
        return EmulatorProcess(cluster, moto.endpoint_url, create_eks_cluster(cluster))

    with _stack(cluster, start, settings_env) as (kube, moto, settings):
        yield SeparateStands(kube, moto, settings)
