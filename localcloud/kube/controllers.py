"""The control plane's loops: Job and DaemonSet controllers, garbage collector, namespace and TTL cleanup."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from localcloud.kube.clock import parse_rfc3339, rfc3339
from localcloud.kube.events import record_event
from localcloud.kube.registry import DeleteOptions, Registry
from localcloud.kube.resources import (
    DAEMONSETS,
    EVENTS,
    JOBS,
    NAMESPACES,
    PODS,
    RESOURCEQUOTAS,
    SERVICEACCOUNTS,
    SERVICES,
    ResourceType,
)
from localcloud.kube.scheduling import fits, tolerates
from localcloud.kube.status import ApiError
from localcloud.kube.store import Obj, clone

FINISHED = ("Succeeded", "Failed")
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


SERVED_KINDS = frozenset({"Job", "DaemonSet", "Pod", "Node", "Namespace", "Service"})
CREATE_BACKOFF_SECONDS = 1.0  # the Job controller's DefaultJobApiBackOff; doubles per failure
CREATE_BACKOFF_MAX_SECONDS = 60.0  # its MaxJobApiBackOff


@dataclass
class CreateBackoff:
    """Pod creations an owner's controller may not retry yet: each refusal doubles the wait (1 s .. 60 s)."""

    failures: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)

    def ready(self, uid: str, now: float) -> bool:
        return now >= self.not_before.get(uid, 0.0)

    def create(self, registry: Registry, owner: Obj, body: Obj, now: float) -> Obj | None:
        """Create an owner's pod; on refusal record ``FailedCreate`` on the owner, back off, return None."""
        uid = owner["metadata"]["uid"]
        try:
            pod = registry.create(PODS, owner["metadata"]["namespace"], body)
        except ApiError as refused:
            component = "job-controller" if owner["kind"] == "Job" else "daemonset-controller"
            record_event(
                registry, owner, "Warning", "FailedCreate", f"Error creating: {refused.message}", component
            )
            failures = self.failures.get(uid, 0)
            self.failures[uid] = failures + 1
            wait = min(CREATE_BACKOFF_SECONDS * 2**failures, CREATE_BACKOFF_MAX_SECONDS)
            self.not_before[uid] = now + wait
            return None
        self.failures.pop(uid, None)
        self.not_before.pop(uid, None)
        return pod


def _owner_uids(obj: Obj) -> list[str]:
    return [reference["uid"] for reference in obj["metadata"].get("ownerReferences") or []]


def _collectable(obj: Obj) -> bool:
    """Every owner is of a kind served here, so its absence means it is gone (not merely unknown)."""
    references = obj["metadata"].get("ownerReferences") or []
    return bool(references) and all(r.get("kind") in SERVED_KINDS for r in references)


def _terminating(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _delete(
    registry: Registry, rtype: ResourceType, obj: Obj, policy: str = "Background", grace: int | None = None
) -> None:
    try:
        registry.delete(
            rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"], DeleteOptions(grace, policy)
        )
    except ApiError as error:
        if error.code != 404:
            raise


def _condition(kind: str, reason: str, message: str, now: float) -> Obj:
    stamp = rfc3339(now)
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


@dataclass
class JobController:
    """batch/v1 Job: pods from the template, counts, Complete/Failed, deadline and backoff limit."""

    registry: Registry
    started: dict[str, float] = field(default_factory=dict)
    backoff: CreateBackoff = field(default_factory=CreateBackoff)
    counted: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: {"Succeeded": set(), "Failed": set()})
    )

    def sync(self, pods_by_owner: dict[str, list[Obj]], now: float) -> None:
        for job in self.registry.store.items(JOBS):
            if _terminating(job) or _finished(job):
                continue
            self._sync_job(job, pods_by_owner.get(job["metadata"]["uid"], []), now)

    def _sync_job(self, job: Obj, pods: list[Obj], now: float) -> None:
        spec, uid = job["spec"], job["metadata"]["uid"]
        counted = self.counted[uid]
        restarts = 0
        for pod in pods:
            phase = pod.get("status", {}).get("phase")
            if phase in FINISHED:
                counted[phase].add(pod["metadata"]["uid"])
            restarts += sum(
                s.get("restartCount", 0) for s in pod.get("status", {}).get("containerStatuses") or []
            )
        active = [p for p in pods if p.get("status", {}).get("phase") not in FINISHED and not _terminating(p)]
        succeeded, failed = len(counted["Succeeded"]), len(counted["Failed"]) + restarts
        # startTime has second precision; the controller's own record keeps deadlines exact
        if job["status"].get("startTime"):
            started = self.started.setdefault(uid, parse_rfc3339(job["status"]["startTime"]))
        else:
            started = self.started.setdefault(uid, now)
        outcome: tuple[str, str, str] | None = None
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded >= spec.get("completions", 1):
            outcome = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        elif failed > spec.get("backoffLimit", 6):
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and now - started >= deadline:
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        if outcome is not None:
            for pod in active:  # a pod a failed Job ends is terminated, and counted as failed
                _delete(self.registry, PODS, pod)
                if outcome[0] == "Failed":
                    counted["Failed"].add(pod["metadata"]["uid"])
                    failed += 1
            active = []
        else:
            wanted = min(spec.get("parallelism", 1), spec.get("completions", 1) - succeeded) - len(active)
            for _ in range(max(0, wanted)):
                created = self._create_pod(job, now) if self.backoff.ready(uid, now) else None
                if created is None:
                    break
                active.append(created)
        ready = sum(1 for p in active if _pod_ready(p))

        status = dict(job["status"])
        status.setdefault("startTime", rfc3339(started))
        status["active"], status["ready"] = len(active), ready
        status["succeeded"], status["failed"] = succeeded, failed
        status["terminating"] = sum(1 for p in pods if _terminating(p))
        status["uncountedTerminatedPods"] = {}
        for key in ("active", "succeeded", "failed", "terminating"):
            if not status[key]:
                status.pop(key)
        if outcome is not None:
            kind, reason, message = outcome
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            status["conditions"] = [
                _condition(interim, reason, message, now),
                _condition(kind, reason, message, now),
            ]
            if kind == "Complete":
                status["completionTime"] = rfc3339(now)
        if status != job["status"]:
            meta = job["metadata"]
            self.registry.mutate(JOBS, meta["namespace"], meta["name"], lambda obj: obj.update(status=status))

    def _create_pod(self, job: Obj, now: float) -> Obj | None:
        template = clone(job["spec"]["template"])
        metadata = template.get("metadata") or {}
        metadata.pop("name", None)
        metadata["generateName"] = f"{job['metadata']['name']}-"
        metadata["ownerReferences"] = [owner_reference(job)]
        return self.backoff.create(self.registry, job, {"metadata": metadata, "spec": template["spec"]}, now)


def _finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _pod_node(pod: Obj) -> str | None:
    if pod["spec"].get("nodeName"):
        return str(pod["spec"]["nodeName"])
    terms = (pod["spec"].get("affinity") or {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for expression in term.get("matchFields") or []:
            if expression.get("key") == "metadata.name" and expression.get("values"):
                return str(expression["values"][0])
    return None


@dataclass
class DaemonSetController:
    """apps/v1 DaemonSet: one pod per eligible node (selector, affinity, taints), status counts."""

    registry: Registry
    backoff: CreateBackoff = field(default_factory=CreateBackoff)

    def sync(self, pods_by_owner: dict[str, list[Obj]], nodes: list[Obj], now: float) -> None:
        for ds in self.registry.store.items(DAEMONSETS):
            if not _terminating(ds):
                self._sync_one(ds, pods_by_owner.get(ds["metadata"]["uid"], []), nodes, now)

    def _sync_one(self, ds: Obj, pods: list[Obj], nodes: list[Obj], now: float) -> None:
        template_spec = self._pod_spec(ds)
        eligible = {n["metadata"]["name"] for n in nodes if fits(template_spec, n)}
        by_node: dict[str | None, list[Obj]] = defaultdict(list)
        for pod in pods:
            if not _terminating(pod):
                by_node[_pod_node(pod)].append(pod)
        for node_name, node_pods in by_node.items():
            for index, pod in enumerate(node_pods):
                if node_name not in eligible or index > 0 or pod.get("status", {}).get("phase") in FINISHED:
                    _delete(self.registry, PODS, pod)
        for node_name in sorted(eligible):
            live = [p for p in by_node.get(node_name, []) if p.get("status", {}).get("phase") not in FINISHED]
            if not live and self.backoff.ready(ds["metadata"]["uid"], now):
                created = self._create_pod(ds, template_spec, node_name, now)
                by_node[node_name] = [created] if created else []
        scheduled = [p for name, ps in by_node.items() if name in eligible for p in ps[:1]]
        ready = sum(1 for p in scheduled if _pod_ready(p))
        misscheduled = sum(1 for name, ps in by_node.items() if name not in eligible and ps)

        def update(obj: Obj) -> None:
            obj["status"].update(
                {
                    "desiredNumberScheduled": len(eligible),
                    "currentNumberScheduled": len(scheduled),
                    "updatedNumberScheduled": len(scheduled),
                    "numberMisscheduled": misscheduled,
                    "numberReady": ready,
                    "numberAvailable": ready,
                    "observedGeneration": obj["metadata"].get("generation", 1),
                }
            )
            if len(eligible) > ready:
                obj["status"]["numberUnavailable"] = len(eligible) - ready
            else:
                obj["status"].pop("numberUnavailable", None)

        self.registry.mutate(DAEMONSETS, ds["metadata"]["namespace"], ds["metadata"]["name"], update)

    @staticmethod
    def _pod_spec(ds: Obj) -> Obj:
        spec: Obj = clone(ds["spec"]["template"]["spec"])
        tolerations = spec.setdefault("tolerations", [])
        extra = list(DAEMON_TOLERATIONS)
        if spec.get("hostNetwork"):
            extra.append(
                {
                    "key": "node.kubernetes.io/network-unavailable",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            )
        for toleration in extra:
            if not tolerates(tolerations, {"key": toleration["key"], "effect": toleration["effect"]}):
                tolerations.append(toleration)
        return spec

    def _create_pod(self, ds: Obj, template_spec: Obj, node_name: str, now: float) -> Obj | None:
        spec = clone(template_spec)
        spec["affinity"] = {
            **(spec.get("affinity") or {}),
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
                    ]
                }
            },
        }
        metadata = clone(ds["spec"]["template"].get("metadata") or {})
        metadata.pop("name", None)
        metadata["generateName"] = f"{ds['metadata']['name']}-"
        metadata["ownerReferences"] = [owner_reference(ds)]
        labels = metadata.setdefault("labels", {})
        labels["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
        labels["controller-revision-hash"] = ds["metadata"]["uid"][:10]
        return self.backoff.create(self.registry, ds, {"metadata": metadata, "spec": spec}, now)


def collect_garbage(registry: Registry, pods_by_owner: dict[str, list[Obj]]) -> None:
    """Delete dependents whose owners are gone; finish foreground deletions once dependents are gone."""
    store = registry.store
    for rtype in (PODS, JOBS):
        for obj in store.items(rtype):
            if (
                _collectable(obj)
                and not _terminating(obj)
                and all(store.by_uid(uid) is None for uid in _owner_uids(obj))
            ):
                _delete(registry, rtype, obj)
    for rtype in (JOBS, DAEMONSETS):
        for owner in store.items(rtype):
            if "foregroundDeletion" not in (owner["metadata"].get("finalizers") or []):
                continue
            dependents = pods_by_owner.get(owner["metadata"]["uid"], [])
            for pod in dependents:
                if not _terminating(pod):
                    _delete(registry, PODS, pod)
            if not dependents:
                remaining = [f for f in owner["metadata"]["finalizers"] if f != "foregroundDeletion"]
                meta = owner["metadata"]
                registry.patch(
                    rtype,
                    meta["namespace"],
                    meta["name"],
                    "application/merge-patch+json",
                    {"metadata": {"finalizers": remaining or None}},
                )


def finalize_namespaces(registry: Registry) -> None:
    """Empty terminating namespaces, then remove them."""
    for namespace in registry.store.items(NAMESPACES):
        if not _terminating(namespace):
            continue
        name = namespace["metadata"]["name"]
        left = 0
        for rtype in (JOBS, DAEMONSETS, SERVICES, PODS, RESOURCEQUOTAS, EVENTS, SERVICEACCOUNTS):
            for obj in registry.store.items(rtype, name):
                left += 1
                if not _terminating(obj):
                    _delete(registry, rtype, obj)
        if not left:
            registry.store.remove(NAMESPACES, None, name)


def expire_finished_jobs(registry: Registry, now: float) -> None:
    """The TTL-after-finished controller: delete finished jobs ``ttlSecondsAfterFinished`` after they end."""
    for job in registry.store.items(JOBS):
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None or _terminating(job) or not _finished(job):
            continue
        ended = max(parse_rfc3339(c["lastTransitionTime"]) for c in job["status"]["conditions"])
        if now >= ended + ttl:
            _delete(registry, JOBS, job, policy="Background")


def index_by_owner(pods: list[Obj]) -> dict[str, list[Obj]]:
    by_owner: dict[str, list[Obj]] = defaultdict(list)
    for pod in pods:
        for uid in _owner_uids(pod):
            by_owner[uid].append(pod)
    return by_owner
