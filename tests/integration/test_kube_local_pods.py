"""Pods on the local node run their containers as processes: env, args, volumes, signals, exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcloud.kube import KubeEmulator
from tests.fixtures.kube import core_api

LOCAL = "local-node"

VIEW = textwrap.dedent(
    """
    import json, os, sys, time
    spool = sys.argv[sys.argv.index("--spool") + 1]
    annotations = os.path.join(os.environ["PODINFO"], "annotations")
    names = ("NODE_NAME", "POD_NAME", "POD_NAMESPACE", "REASON", "SPOOL_FILE", "GREETING", "TMPDIR")
    view = {"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in names},
            "annotations": open(annotations).read(), "python": sys.executable}
    with open(os.path.join(spool, "view.json"), "w") as out:
        json.dump(view, out)
    while 'go="yes"' not in open(annotations).read():
        time.sleep(0.05)
    """
)


def local_pod(
    name: str, script: str, *, args: list[str] | None = None, tmp_volume: bool = False, **spec: Any
) -> dict[str, Any]:
    """A pod for the local node; ``tmp_volume`` mounts an emptyDir at /tmp (which then maps /tmp paths)."""
    tmp = [{"name": "tmp", "mountPath": "/tmp"}] if tmp_volume else []
    return {
        "metadata": {"name": name, "annotations": {"eks-capture.io/reason": "alarm high-retransmits"}},
        "spec": {
            "nodeName": LOCAL,
            "restartPolicy": "Never",
            "volumes": [
                {"name": "spool", "emptyDir": {"sizeLimit": "64Mi"}},
                {"name": "tmp", "emptyDir": {}},
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]
                    },
                },
            ],
            "containers": [
                {
                    "name": "agent",
                    "image": "eks-capture:test",
                    "command": ["python3", "-c", script],
                    "args": args or [],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "env": [
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {
                            "name": "POD_NAMESPACE",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {
                            "name": "REASON",
                            "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.annotations['eks-capture.io/reason']"}
                            },
                        },
                        {"name": "PODINFO", "value": "/etc/podinfo"},
                        {"name": "SPOOL_FILE", "value": "/spool/file.pcap"},
                        {"name": "GREETING", "value": "hello $(POD_NAME)"},
                    ],
                    "volumeMounts": [
                        {"name": "spool", "mountPath": "/spool"},
                        {"name": "podinfo", "mountPath": "/etc/podinfo"},
                        *tmp,
                    ],
                }
            ],
            **spec,
        },
    }


@pytest.fixture
def core(kube: KubeEmulator, kube_client: client.ApiClient) -> Any:
    kube.add_node(LOCAL, local=True)
    return core_api(kube_client)


def phase(core: Any, name: str) -> str:
    return str(core.read_namespaced_pod(name, "default").status.phase)


def gone(core: Any, name: str) -> bool:
    return name not in {p.metadata.name for p in core.list_namespaced_pod("default").items}


def test_local_container_sees_its_env_args_and_volumes_and_follows_annotations(
    kube: KubeEmulator, core: Any
) -> None:
    created = core.create_namespaced_pod(
        "default", local_pod("agent", VIEW, args=["--spool", "/spool", "--out=/spool/x"], tmp_volume=True)
    )
    kube.wait_for(lambda: kube.kubelet.local_pod(created.metadata.uid) is not None, what="sandbox")
    sandbox = kube.kubelet.local_pod(created.metadata.uid)
    assert sandbox is not None
    spool = sandbox.volumes["spool"]
    view_file = spool / "view.json"
    kube.wait_for(view_file.exists, timeout=10, what="container wrote its view")
    view = json.loads(view_file.read_text())
    assert view["argv"] == ["--spool", str(spool), f"--out={spool}/x"]
    assert view["env"] == {
        "NODE_NAME": LOCAL,
        "POD_NAME": "agent",
        "POD_NAMESPACE": "default",
        "REASON": "alarm high-retransmits",
        "SPOOL_FILE": f"{spool}/file.pcap",
        "GREETING": "hello agent",
        "TMPDIR": str(sandbox.volumes["tmp"]),
    }
    assert view["annotations"] == 'eks-capture.io/reason="alarm high-retransmits"'
    assert Path(view["python"]).resolve() == Path(__import__("sys").executable).resolve()
    assert phase(core, "agent") == "Running"
    core.patch_namespaced_pod("agent", "default", {"metadata": {"annotations": {"go": "yes"}}})
    kube.wait_for(lambda: phase(core, "agent") == "Succeeded", timeout=10, what="pod succeeded")
    terminated = core.read_namespaced_pod("agent", "default").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")


def test_downward_volume_is_written_atomically_through_a_data_link(kube: KubeEmulator, core: Any) -> None:
    created = core.create_namespaced_pod("default", local_pod("agent", VIEW, args=["--spool", "/spool"]))
    kube.settle()
    sandbox = kube.kubelet.local_pod(created.metadata.uid)
    assert sandbox is not None
    podinfo = sandbox.volumes["podinfo"]
    assert (podinfo / "..data").is_symlink()
    assert (podinfo / "annotations").is_symlink()
    assert Path(str(podinfo / "annotations")).resolve().parent == (podinfo / "..data").resolve()


def test_exit_code_and_log_tail_reach_the_container_status(kube: KubeEmulator, core: Any) -> None:
    script = "import sys; print('starting'); print('bad filter: tcp port x', file=sys.stderr); sys.exit(3)"
    core.create_namespaced_pod("default", local_pod("fails", script))
    kube.wait_for(lambda: phase(core, "fails") == "Failed", timeout=10, what="pod failed")
    terminated = core.read_namespaced_pod("fails", "default").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert "bad filter: tcp port x" in terminated.message
    assert "starting" in core.read_namespaced_pod_log("fails", "default")


def test_deletion_sends_sigterm_and_the_pod_goes_when_the_process_exits(
    kube: KubeEmulator, core: Any, tmp_path: Path
) -> None:
    marker, ready = tmp_path / "flushed", tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        def stop(*_):
            open({str(marker)!r}, "w").write("flushed")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.05)
        """
    )
    core.create_namespaced_pod("default", local_pod("graceful", script))
    kube.wait_for(ready.exists, timeout=10, what="handler installed")
    core.delete_namespaced_pod("graceful", "default")
    kube.wait_for(lambda: gone(core, "graceful"), timeout=10, what="pod gone")
    assert marker.read_text() == "flushed"


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    kube: KubeEmulator, core: Any, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.05)
        """
    )
    core.create_namespaced_pod("default", local_pod("stubborn", script, terminationGracePeriodSeconds=1))
    kube.wait_for(ready.exists, timeout=10, what="handler installed")
    core.delete_namespaced_pod("stubborn", "default")
    kube.tick()
    assert not gone(core, "stubborn")
    kube.wait_for(lambda: gone(core, "stubborn"), timeout=6, what="pod killed and gone")


def test_on_failure_restarts_the_container_until_it_succeeds(
    kube: KubeEmulator, core: Any, tmp_path: Path
) -> None:
    attempted = tmp_path / "attempted"
    script = textwrap.dedent(
        f"""
        import os, sys
        if not os.path.exists({str(attempted)!r}):
            open({str(attempted)!r}, "w").close()
            sys.exit(1)
        """
    )
    core.create_namespaced_pod("default", local_pod("flaky", script, restartPolicy="OnFailure"))
    kube.wait_for(lambda: phase(core, "flaky") == "Succeeded", timeout=10, what="pod succeeded")
    status = core.read_namespaced_pod("flaky", "default").status.container_statuses[0]
    assert (status.restart_count, status.state.terminated.exit_code) == (1, 0)


FILLER = textwrap.dedent(
    """
    import sys, time
    spool = sys.argv[sys.argv.index("--spool") + 1]
    with open(spool + "/big.pcap", "wb") as out:
        out.write(b"x" * int(sys.argv[sys.argv.index("--bytes") + 1]))
        out.flush()
    time.sleep(60)
    """
)


@pytest.mark.parametrize(("written", "evicted"), [(70 << 20, True), (60 << 20, False)])
def test_an_emptydir_past_its_size_limit_gets_the_pod_evicted_by_the_kubelet(
    kube: KubeEmulator, core: Any, written: int, evicted: bool
) -> None:
    args = ["--spool", "/spool", "--bytes", str(written)]
    core.create_namespaced_pod("default", local_pod("filler", FILLER, args=args))  # spool sizeLimit 64Mi
    if not evicted:
        kube.wait_for(lambda: phase(core, "filler") == "Running", timeout=10, what="pod running")
        kube.settle()
        assert phase(core, "filler") == "Running"
        return
    kube.wait_for(lambda: phase(core, "filler") == "Failed", timeout=15, what="pod evicted")
    status = core.read_namespaced_pod("filler", "default").status
    message = 'Usage of EmptyDir volume "spool" exceeds the limit "64Mi". '
    assert (status.reason, status.message) == ("Evicted", message)
    assert status.container_statuses[0].state.terminated.exit_code == 137
    disruption = next(c for c in status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=filler").items
    assert [(e.type, e.reason, e.message) for e in events] == [("Warning", "Evicted", message)]
