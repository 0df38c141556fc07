"""Pods on the node that is this machine: each container runs as a local process from the pod spec."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localcloud.kube.clock import rfc3339
from localcloud.kube.downward import container_env, expand, substitute_paths, volume_files, write_atomically

Obj = dict[str, Any]
PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


@dataclass
class ContainerRun:
    """One container's process and what the kubelet reports about it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    started_at: float = 0.0
    exit_code: int | None = None
    finished_at: float = 0.0
    start_error: str = ""
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, cwd: Path) -> None:
        self._log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=cwd,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            self.start_error = f"failed to start container process: {error}"
            self.exit_code, self.finished_at = 128, time.time()
        self.started_at = time.time()

    def poll(self) -> bool:
        """Whether the process has ended (its exit code recorded)."""
        if self.exit_code is not None:
            return True
        if self.process is None or self.process.poll() is None:
            return False
        code = self.process.returncode
        self.exit_code = 128 - code if code < 0 else code
        self.finished_at = time.time()
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the container's leftovers go too
            os.killpg(self.process.pid, signal.SIGKILL)
        if self._log:
            self._log.close()
        return True

    def signal(self, number: int, group: bool = False) -> None:
        if self.process is None or self.exit_code is not None:
            return
        try:
            if group:
                os.killpg(self.process.pid, number)
            else:
                self.process.send_signal(number)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 80, limit: int = 2048) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])[-limit:]

    def status(self, container: Obj) -> Obj:
        """The containerStatus entry for this run."""
        base: Obj = {
            "name": self.name,
            "image": container.get("image", ""),
            "imageID": "",
            "restartCount": self.restart_count,
            "started": False,
        }
        if self.exit_code is None:
            base.update(ready=True, started=True, state={"running": {"startedAt": rfc3339(self.started_at)}})
            return base
        terminated: Obj = {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else ("StartError" if self.start_error else "Error"),
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
        }
        message = self.start_error or (
            self.log_tail()
            if self.exit_code and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            else ""
        )
        if message:
            terminated["message"] = message
        base.update(ready=False, state={"terminated": terminated})
        return base


class LocalPod:
    """A pod's sandbox on this machine: its directory, volumes, and one process per container."""

    def __init__(
        self, pod: Obj, root: Path, base_env: Mapping[str, str], entrypoints: Mapping[str, list[str]]
    ) -> None:
        self.uid = pod["metadata"]["uid"]
        self.dir = root / self.uid
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.volumes: dict[str, Path] = {}
        self._downward: dict[str, Obj] = {}
        for volume in pod["spec"].get("volumes") or []:
            if "emptyDir" in volume or "downwardAPI" in volume:
                path = self.dir / "volumes" / volume["name"]
                path.mkdir(parents=True, exist_ok=True)
                self.volumes[volume["name"]] = path
            if "downwardAPI" in volume:
                self._downward[volume["name"]] = volume
        self._written: dict[str, dict[str, str]] = {}
        self.refresh_downward(pod)
        self.containers = [
            self._container_run(c, pod, base_env, entrypoints) for c in pod["spec"]["containers"]
        ]
        self.term_signalled_at: float | None = None

    def _container_run(
        self, container: Obj, pod: Obj, base_env: Mapping[str, str], entrypoints: Mapping[str, list[str]]
    ) -> ContainerRun:
        mounts = [
            (m["mountPath"], str(self.volumes[m["name"]]))
            for m in container.get("volumeMounts") or []
            if m.get("name") in self.volumes
        ]
        own = {variable["name"] for variable in container.get("env") or []}
        env = container_env(container, pod, base_env)
        env = {key: substitute_paths(value, mounts) if key in own else value for key, value in env.items()}
        tmp = dict(mounts).get("/tmp")
        if tmp and "TMPDIR" not in own:  # a volume at /tmp is where the container's temp files go
            env["TMPDIR"] = tmp
        image = str(container.get("image", ""))
        command = list(container.get("command") or entrypoints.get(image.split("@")[0].rsplit(":", 1)[0], []))
        argv = [
            substitute_paths(expand(str(a), env), mounts) for a in [*command, *(container.get("args") or [])]
        ]
        if argv and argv[0] in PYTHON_NAMES:
            argv[0] = sys.executable
        run = ContainerRun(container["name"], argv, env, self.dir / "logs" / f"{container['name']}.log")
        if not argv:
            run.start_error = (
                f"no command for image {image!r} (set command, or the kubelet's image entrypoints)"
            )
            run.exit_code, run.started_at, run.finished_at = 128, time.time(), time.time()
        return run

    def start(self) -> None:
        for run in self.containers:
            if run.exit_code is None:
                run.start(self.dir)

    def restart(self, run: ContainerRun) -> None:
        run.restart_count += 1
        run.exit_code, run.process, run.start_error = None, None, ""
        run.start(self.dir)

    def refresh_downward(self, pod: Obj) -> None:
        """Rewrite downward-API volumes whose content changed (annotations, labels)."""
        for name, volume in self._downward.items():
            files = volume_files(volume, pod)
            if files != self._written.get(name):
                write_atomically(self.volumes[name], files)
                self._written[name] = files

    def poll(self) -> bool:
        """Whether every container has exited."""
        return all([run.poll() for run in self.containers])

    def terminate(self) -> None:
        """SIGTERM to each container's main process, once."""
        if self.term_signalled_at is None:
            self.term_signalled_at = time.time()
            for run in self.containers:
                run.signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to every process of every container (the runtime kills the whole cgroup)."""
        for run in self.containers:
            run.signal(signal.SIGKILL, group=True)
        for run in self.containers:
            if run.process is not None and run.exit_code is None:
                try:
                    run.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    continue
                run.poll()

    def log(self, container: str) -> str:
        for run in self.containers:
            if run.name == container:
                try:
                    return run.log_path.read_text(errors="replace")
                except OSError:
                    return ""
        return ""

    def remove(self) -> None:
        self.kill()
        for run in self.containers:
            if run.process is not None and run.process.returncode is None:
                run.process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
