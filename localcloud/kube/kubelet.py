"""The scheduler and the kubelets: bind pods to nodes, admit them (nodeadmission), advance their phases.

Pods on ordinary nodes follow a scripted ``PodBehaviour`` (by default: start at once, run until
deleted). Pods on the node marked local run their containers as processes on this machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.kube.behaviours import PodBehaviour, PodScript
from localcloud.kube.clock import parse_rfc3339, rfc3339
from localcloud.kube.eviction import EVICTED, emptydir_over_limit, past_deadline, record_eviction
from localcloud.kube.local import LocalPod
from localcloud.kube.nodeadmission import (
    NodeUsage,
    TaintEvictions,
    evict_for_taint,
    reject,
)
from localcloud.kube.podstatus import internal_ip, pod_phase, set_condition
from localcloud.kube.registry import DeleteOptions, Registry
from localcloud.kube.resources import NODES, PODS
from localcloud.kube.scheduling import fits, node_ready, unschedulable_message
from localcloud.kube.selectors import structured_selector
from localcloud.kube.status import ApiError, bad_request

__all__ = ["Kubelet", "PodBehaviour"]  # PodBehaviour lived here first; localcloud.kube exports it too

Obj = dict[str, Any]
RESTART_BACKOFF_SECONDS = 0.5  # doubles per restart, like CrashLoopBackOff (whose base is 10 s)
RESTART_BACKOFF_MAX_SECONDS = 30.0


@dataclass
class _Run:
    """What a kubelet remembers about a pod it runs."""

    behaviour: PodBehaviour
    bound_at: float
    running_at: float | None = None
    ended_at: float | None = None
    stopping_at: float | None = None
    local: LocalPod | None = None
    downward_at: float = 0.0
    deadline_exceeded: bool = False
    usage_checked_at: float = 0.0
    quiet_at: str | None = None


@dataclass
class Kubelet:
    """All nodes' kubelets plus the default scheduler."""

    registry: Registry
    workdir: Path
    local_nodes: set[str] = field(default_factory=set)
    local_env: dict[str, str] = field(default_factory=dict)
    image_entrypoints: dict[str, list[str]] = field(default_factory=dict)
    downward_refresh_seconds: float = 1.0
    eviction_check_seconds: float = 1.0  # the real eviction manager's housekeeping: 10 s
    _scripts: list[PodScript] = field(default_factory=list)
    _runs: dict[str, _Run] = field(default_factory=dict)
    _next_ip: int = 0
    _load: Counter[str] = field(default_factory=Counter)
    _usage: NodeUsage = field(default_factory=lambda: NodeUsage([]))
    _taints: TaintEvictions = field(default_factory=TaintEvictions)

    def script(
        self,
        behaviour: PodBehaviour,
        *,
        node: str | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        name_prefix: str | None = None,
    ) -> None:
        """Pods matching every given filter, started from now on, follow ``behaviour`` (latest wins)."""
        selector = structured_selector({"matchLabels": dict(labels)}) if labels else ()
        self._scripts.insert(0, PodScript(behaviour, node, namespace, selector, name_prefix))

    def clear_scripts(self) -> None:
        self._scripts.clear()

    def _behaviour_for(self, pod: Obj) -> PodBehaviour:
        return next((s.behaviour for s in self._scripts if s.matches(pod)), PodBehaviour())

    # the loop ---------------------------------------------------------------------------------
    def sync(self, now: float) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.registry.store.items(NODES)}
        self._usage = NodeUsage(pods := self.registry.store.items(PODS))
        self._load = Counter(p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName"))
        live = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            live.add(uid)
            try:
                self._sync_pod(pod, nodes, now)
            except ApiError as error:
                if error.code not in (404, 409):
                    raise
        for uid in [uid for uid in self._runs if uid not in live]:
            run = self._runs.pop(uid)
            if run.local:
                run.local.remove()

    def _sync_pod(self, pod: Obj, nodes: dict[str, Obj], now: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node_name = spec.get("nodeName")
        node = nodes.get(node_name) if node_name else None
        run = self._runs.get(meta["uid"])
        running = run is not None and not meta.get("deletionTimestamp")
        if running and node is not None and self._taints.eviction_due(pod, node, now):
            evict_for_taint(self.registry, pod, now)
            return
        if run is not None and run.quiet_at == meta["resourceVersion"]:
            return  # nothing can change until the pod does (no timer pending)
        if meta.get("deletionTimestamp"):
            self._terminate(pod, node, run, now)
            return
        if not node_name:
            self._schedule(pod, list(nodes.values()), now)
            return
        if node is None:
            if run is None:
                self._mark_unschedulable(pod, unschedulable_message(spec, list(nodes.values())), now)
            return
        if not node_ready(node):
            return
        if run is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return  # rejected by this kubelet: never started
            rejection = self._usage.admission(pod, node, self._runs)
            if rejection is not None:
                reject(self.registry, pod, rejection)
                return
            run = self._start(pod, node, now)
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            run.quiet_at = meta["resourceVersion"]
            return
        stop = None if run.deadline_exceeded else past_deadline(pod, now - run.bound_at)
        if stop is None and run.local and now - run.usage_checked_at >= self.eviction_check_seconds:
            run.usage_checked_at = now
            stop = emptydir_over_limit(pod, run.local.volumes)
        if stop is not None:
            run.deadline_exceeded = True  # the kubelet stopped it: containers killed, status final
            if run.local:
                run.local.kill()
            self._write_status(pod, node, run, now, phase="Failed", reason=stop.reason, message=stop.message)
            if stop.reason == EVICTED:
                record_eviction(self.registry, pod, stop, now)
            return
        if run.local:
            self._advance_local(pod, node, run, now)
        else:
            self._advance_scripted(pod, node, run, now)

    # scheduling ---------------------------------------------------------------------------------
    def _schedule(self, pod: Obj, nodes: list[Obj], now: float) -> None:
        candidates = [n for n in nodes if fits(pod["spec"], n)]
        if not candidates:
            self._mark_unschedulable(pod, unschedulable_message(pod["spec"], nodes), now)
            return
        load = self._load
        chosen = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0), n["metadata"]["name"]))

        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = chosen["metadata"]["name"]
            set_condition(obj, "PodScheduled", "True", now)

        self.registry.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], bind)
        load[chosen["metadata"]["name"]] += 1

    def _mark_unschedulable(self, pod: Obj, message: str, now: float) -> None:
        for condition in pod.get("status", {}).get("conditions") or []:
            if condition["type"] == "PodScheduled" and (condition["status"], condition.get("message")) == (
                "False",
                message,
            ):
                return

        def change(obj: Obj) -> None:
            set_condition(obj, "PodScheduled", "False", now, "Unschedulable", message)

        self.registry.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change)

    # running ------------------------------------------------------------------------------------
    def _start(self, pod: Obj, node: Obj, now: float) -> _Run:
        run = _Run(self._behaviour_for(pod), bound_at=now)
        if node["metadata"]["name"] in self.local_nodes:
            run.local = LocalPod(pod, self.workdir, self._base_env(), self.image_entrypoints)
            run.local.start()
            run.running_at = now
            run.downward_at = now
        self._runs[pod["metadata"]["uid"]] = run
        self._write_status(pod, node, run, now)
        return run

    def _base_env(self) -> dict[str, str]:
        base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
        return {**base, **self.local_env}

    def _advance_scripted(self, pod: Obj, node: Obj, run: _Run, now: float) -> None:
        behaviour = run.behaviour
        if behaviour.image_pull_error:
            self._write_status(pod, node, run, now)
            return
        if run.running_at is None and now - run.bound_at >= behaviour.start_after:
            run.running_at = now
        running = run.running_at is not None and run.ended_at is None
        if running and behaviour.run_for is not None and now - (run.running_at or now) >= behaviour.run_for:
            run.ended_at = now
        wrote = self._write_status(pod, node, run, now)
        waiting = run.running_at is None or (behaviour.run_for is not None and run.ended_at is None)
        if not wrote and not waiting and not pod["spec"].get("activeDeadlineSeconds"):
            run.quiet_at = pod["metadata"]["resourceVersion"]

    def _advance_local(self, pod: Obj, node: Obj, run: _Run, now: float) -> None:
        local = run.local
        assert local is not None
        if now - run.downward_at >= self.downward_refresh_seconds:
            local.refresh_downward(pod)
            run.downward_at = now
        policy = pod["spec"].get("restartPolicy", "Always")
        for container in local.containers:
            if not container.poll():
                continue
            restarts = policy == "Always" or (policy == "OnFailure" and container.exit_code != 0)
            backoff = min(RESTART_BACKOFF_SECONDS * 2**container.restart_count, RESTART_BACKOFF_MAX_SECONDS)
            if restarts and now - container.finished_at >= backoff:
                local.restart(container)
        if local.poll():
            run.ended_at = now
        self._write_status(pod, node, run, now)

    def _terminate(self, pod: Obj, node: Obj | None, run: _Run | None, now: float) -> None:
        """Graceful deletion: stop the containers, then remove the pod (or kill at the deadline)."""
        meta = pod["metadata"]
        deadline = parse_rfc3339(meta["deletionTimestamp"])
        if run is not None and run.local is not None:
            run.local.terminate()
            if now >= deadline:
                run.local.kill()
            if not run.local.poll():
                return
        elif run is not None and node is not None and node_ready(node) and run.ended_at is None:
            if run.stopping_at is None:
                run.stopping_at = now
            if now - run.stopping_at < run.behaviour.stop_after and now < deadline:
                return
        elif node is not None and not node_ready(node):
            return
        if meta.get("finalizers"):
            return
        self.registry.delete(PODS, meta["namespace"], meta["name"], DeleteOptions(grace_period_seconds=0))

    def _write_status(
        self,
        pod: Obj,
        node: Obj,
        run: _Run,
        now: float,
        phase: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> bool:
        """Write the pod's status from the run; whether anything changed."""
        containers = pod["spec"]["containers"]
        statuses = self._container_statuses(pod, run, now)
        if phase is None:
            phase = pod_phase(
                pod["spec"].get("restartPolicy", "Always"), statuses, run.running_at is not None
            )
        running = phase == "Running" and all(s.get("ready") for s in statuses)
        host_ip = internal_ip(node)
        pod_ip = (
            host_ip
            if pod["spec"].get("hostNetwork")
            else (pod.get("status", {}).get("podIP") or self._allocate_ip())
        )

        def change(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = phase
            status.setdefault("startTime", rfc3339(run.bound_at))
            status["hostIP"], status["hostIPs"] = host_ip, [{"ip": host_ip}]
            status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
            status["containerStatuses"] = statuses
            for key in ("reason", "message"):
                status.pop(key, None)
            if reason:
                status["reason"] = reason
            if message:
                status["message"] = message
            set_condition(obj, "PodScheduled", "True", now)
            set_condition(obj, "Initialized", "True", now)
            set_condition(obj, "ContainersReady", "True" if running else "False", now)
            set_condition(obj, "Ready", "True" if running else "False", now)

        current = pod.get("status", {})
        unchanged = (
            current.get("phase") == phase
            and current.get("containerStatuses") == statuses
            and current.get("reason") == reason
            and current.get("podIP") == pod_ip
        )
        if len(statuses) != len(containers) or unchanged:
            return False
        self.registry.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change)
        return True

    def _container_statuses(self, pod: Obj, run: _Run, now: float) -> list[Obj]:
        statuses = []
        for index, container in enumerate(pod["spec"]["containers"]):
            if run.local is not None:
                statuses.append(run.local.containers[index].status(container))
                continue
            status: Obj = {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "restartCount": 0,
                "ready": False,
                "started": False,
            }
            if run.deadline_exceeded:
                status["state"] = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "Error",
                        "startedAt": rfc3339(run.running_at or now),
                        "finishedAt": rfc3339(now),
                    }
                }
            elif run.behaviour.image_pull_error:
                status["state"] = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{container.get("image", "")}"',
                    }
                }
            elif run.running_at is None:
                status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            elif run.ended_at is None:
                status.update(
                    ready=True, started=True, state={"running": {"startedAt": rfc3339(run.running_at)}}
                )
            else:
                code = run.behaviour.exit_code
                terminated: Obj = {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": rfc3339(run.running_at),
                    "finishedAt": rfc3339(run.ended_at),
                }
                if run.behaviour.message:
                    terminated["message"] = run.behaviour.message
                status["state"] = {"terminated": terminated}
            statuses.append(status)
        return statuses

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.0.{128 + self._next_ip // 250}.{self._next_ip % 250 + 2}"

    # logs ---------------------------------------------------------------------------------------
    def read_log(self, pod: Obj, container: str | None) -> str:
        names = [c["name"] for c in pod["spec"]["containers"]]
        name = pod["metadata"]["name"]
        if container is None:
            if len(names) > 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        run = self._runs.get(pod["metadata"]["uid"])
        if run is None:
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        return run.local.log(container) if run.local else run.behaviour.log

    def stop(self) -> None:
        for run in self._runs.values():
            if run.local:
                run.local.remove()
        self._runs.clear()

    def local_pod(self, uid: str) -> LocalPod | None:
        """The local sandbox of a pod (its directory and processes), for tests."""
        run = self._runs.get(uid)
        return run.local if run else None
