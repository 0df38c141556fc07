"""The reaper: nothing outlives its time box, and every capture ends with a verdict per node.

One sweep per cluster makes two label-selected list calls (capture Jobs, capture pods), however many
captures there are. It deletes what is finished, expired or stuck, records each node's verdict on its
session, frees the node locks, and closes sessions whose Jobs are all gone and whose files, as the
nodes' manifests list them, are all indexed (or past INDEX_WAIT_SECONDS: docs/design.md, Verdicts). It
is safe to run concurrently with itself and with the trigger: deletions tolerate 404, session closing is
a conditional write, young sessions are left to the trigger, and totals are only ever added by the
indexer.

Deletion propagation: Foreground for a Job whose pod may still run (the Job stays visible, with a
deletionTimestamp, until the pod's grace period — in which the uploader flushes — is over), Background
for a Job that has finished (nothing is left to flush).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture.captures.deps import Deps
from eks_capture.captures.notifications import ReportOutcome, notify_end
from eks_capture.captures.recorder import (
    read_window_manifest,
    recorder_pods,
    unhealthy_recorders,
    window_verdict,
)
from eks_capture.captures.verdicts import (
    NAMED_TOGETHER,
    Verdict,
    counted_files,
    index_wait_verdict,
    judge,
    listed_at,
    listed_packets,
    never_had_a_pod,
    node_evidence,
    proven,
    session_outcome,
    top_findings,
    unindexed_files,
)
from eks_capture.errors import CaptureError
from eks_capture.events.closings import announce_closed
from eks_capture.kube.jobs import CaptureJob
from eks_capture.kube.labels import ANNOTATION_EXPIRES_AT, LABEL_CAPTURE_ID
from eks_capture.kube.manifests.job import TERMINATION_MARGIN_SECONDS
from eks_capture.store.sessions import OPEN_SESSION_STATES, CaptureSession, NodeCapture
from eks_capture.times import iso_utc, parse_iso

logger = Logger(child=True)
Obj = dict[str, Any]

#: A session whose trigger attempt began this recently may still be getting its Jobs (the trigger's timeout).
TRIGGER_QUIET_SECONDS = 120
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
OPEN_NODE_STATES = ("pending", "running")


@dataclass
class SweepReport:
    """What one sweep did, for the logs, the metrics and the tests."""

    cluster: str
    jobs_seen: int = 0
    deleted: Counter[str] = field(default_factory=Counter)
    closed: dict[str, str] = field(default_factory=dict)
    awaiting_index: dict[str, int] = field(default_factory=dict)  # capture: its files in S3 not indexed yet
    errors: list[str] = field(default_factory=list)
    unhealthy_recorders: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "jobs_seen": self.jobs_seen,
            "deleted": dict(self.deleted),
            "closed": self.closed,
            "awaiting_index": self.awaiting_index,
            "errors": self.errors,
            "unhealthy_recorders": self.unhealthy_recorders,
        }


def _job_of(pod: dict[str, Any]) -> str | None:
    labels = pod.get("metadata", {}).get("labels") or {}
    return next((labels[key] for key in JOB_NAME_LABELS if key in labels), None)


class _Sweep:
    def __init__(self, deps: Deps, cluster_name: str) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.cluster_name = cluster_name
        self.cluster = deps.cluster(cluster_name)
        self.now = deps.now()
        self.report = SweepReport(cluster_name)
        self.sessions: dict[str, CaptureSession | None] = {}

    def session(self, capture_id: str) -> CaptureSession | None:
        if capture_id not in self.sessions:
            self.sessions[capture_id] = self.deps.store.get_session(capture_id)
        return self.sessions[capture_id]

    def run(self) -> SweepReport:
        namespace = self.settings.capture_namespace
        jobs = [CaptureJob.from_kubernetes(job) for job in self.cluster.capture_jobs(namespace)]
        pods = self.cluster.capture_pods(namespace)
        self.report.jobs_seen = len(jobs)
        pods_by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            pods_by_job.setdefault(_job_of(pod) or "", []).append(pod)
        capture_ids = {job.capture_id for job in jobs if job.capture_id}
        found = self.deps.store.get_sessions(capture_ids)  # in batches: a sweep may see a thousand
        self.sessions.update({capture_id: found.get(capture_id) for capture_id in capture_ids})
        grace = timedelta(seconds=self.settings.upload_grace_seconds)
        bound = timedelta(seconds=self.settings.pending_bound_seconds)
        refusals = self.refusals(jobs, pods_by_job)
        verdicts = [
            (job, judge(job, pods_by_job.get(job.name, []), self.now, bound, grace, refusals.get(job.name)))
            for job in jobs
            if job.name
        ]
        with ThreadPoolExecutor(max_workers=self.settings.api_parallelism) as pool:
            list(pool.map(lambda pair: self.settle_job(*pair), verdicts))
        job_names = {job.name for job in jobs}
        orphans = [p for p in pods if (_job_of(p) or "") not in job_names]
        for pod in orphans:
            self.reap_orphan_pod(pod, grace)
        active = {job.capture_id for job, verdict in verdicts if not verdict.delete and job.capture_id}
        self.close_sessions(active)
        self.check_recorders()
        return self.report

    def refusals(
        self, jobs: list[CaptureJob], pods_by_job: dict[str, list[dict[str, Any]]]
    ) -> dict[str, str]:
        """Why the cluster refused pods, by Job (FailedCreate events): listed only when a Job has no pod;
        a list that fails costs the reason, not the sweep."""
        if not any(never_had_a_pod(job, pods_by_job.get(job.name, [])) for job in jobs):
            return {}
        try:
            return self.cluster.job_refusals(self.settings.capture_namespace)
        except CaptureError as error:
            self.report.errors.append(f"list events: {error.message}")
            logger.warning("could not read why pods were refused", extra={"error": error.message})
            return {}

    def check_recorders(self) -> None:
        """Report recorder pods that cannot serve a window (their nodes would fall back to Jobs)."""
        namespace = self.settings.capture_namespace
        if not self.cluster.recorder_daemonsets(namespace):
            return
        unhealthy = unhealthy_recorders(recorder_pods(self.cluster, namespace))
        self.report.unhealthy_recorders = unhealthy
        for pod, why in sorted(unhealthy.items()):
            logger.warning(f"recorder {pod} is unhealthy: {why}", extra={"pod": pod, "why": why})

    def settle_job(self, job: CaptureJob, verdict: Verdict) -> None:
        name, node = job.name, job.node
        capture_id = job.capture_id or ""
        if not verdict.delete:
            return
        propagation = "Background" if verdict.status in ("completed", "failed") else "Foreground"
        try:
            deleted = self.cluster.delete_job(self.settings.capture_namespace, name, propagation)
        except CaptureError as error:
            self.report.errors.append(f"delete job {name}: {error.message}")
            logger.warning(
                f"could not delete job {name}; the next sweep retries", extra={"error": error.message}
            )
            return
        if not deleted:
            return
        session = self.session(capture_id)
        if session is None:
            self.report.deleted[verdict.status] += 1
            logger.warning(
                f"deleted orphan capture job {name} on {node} (no session {capture_id}): {verdict.reason}"
            )
            return
        previous = session.nodes.get(node) or NodeCapture(node=node, job=name)
        record = previous.model_copy(update={"status": verdict.status, "reason": verdict.reason})
        if not self.deps.store.settle_node(capture_id, record, len(session.nodes.keys() | {node})):
            return
        self.report.deleted[verdict.status] += 1
        session.nodes[node] = record
        self.deps.store.release_node(session.cluster, node, capture_id)
        logger.info(
            f"capture {capture_id} on {node}: {verdict.status} ({verdict.reason}); job {name} deleted"
        )

    def reap_orphan_pod(self, pod: dict[str, Any], grace: timedelta) -> None:
        """A capture pod with no Job (its Job was orphan-deleted): removed once done or past its expiry."""
        metadata, phase = pod["metadata"], (pod.get("status") or {}).get("phase")
        expires = parse_iso((metadata.get("annotations") or {}).get(ANNOTATION_EXPIRES_AT))
        expired = expires is not None and self.now > expires + grace
        if phase not in ("Succeeded", "Failed") and not expired:
            return
        try:
            if self.cluster.delete_pod(self.settings.capture_namespace, metadata["name"]):
                self.report.deleted["orphan_pod"] += 1
                logger.warning(f"deleted orphan capture pod {metadata['name']} ({phase}, expired: {expired})")
        except CaptureError as error:
            self.report.errors.append(f"delete pod {metadata['name']}: {error.message}")

    def close_sessions(self, active: set[str]) -> None:
        settings = self.settings
        lookback = timedelta(
            seconds=settings.max_duration_seconds
            + settings.upload_grace_seconds
            + settings.index_wait_seconds
        )
        since = self.now - lookback - timedelta(days=1)
        for session in self.deps.store.open_sessions(self.cluster_name, since):
            try:
                self.close_if_done(session, active)
            except (BotoCoreError, ClientError) as error:  # S3 or DynamoDB: says nothing of the capture
                self.report.errors.append(f"close {session.capture_id}: {error}")
                logger.warning(
                    f"capture {session.capture_id} stays open: an AWS call failed while the sweep closed it "
                    f"({error}); the next sweep tries it again",
                    extra={"capture_id": session.capture_id, "error": str(error)},
                )

    def close_if_done(self, session: CaptureSession, active: set[str]) -> None:
        """Close the session once nothing of it can still run or upload, no trigger attempt in flight."""
        attempted = session.attempted_at or session.created_at
        starting = session.status == "starting"
        young = starting and (self.now - attempted).total_seconds() < TRIGGER_QUIET_SECONDS
        if session.capture_id in active or young or self._window_open(session):
            return
        remaining = self.cluster.capture_jobs(
            self.settings.capture_namespace, f"{LABEL_CAPTURE_ID}={session.capture_id}"
        )
        if remaining:
            return
        current = self.deps.store.get_session(session.capture_id)  # a concurrent sweep may have closed it
        if (
            current is not None
            and current.status in OPEN_SESSION_STATES
            and current.attempted_at == session.attempted_at  # no trigger attempt since Jobs were listed
        ):
            self.close(current)

    def _window_open(self, session: CaptureSession) -> bool:
        """A recorder node (no Job) may still be uploading its window until the session expires, and past
        that, while its window manifest (written last) is not in S3, for the grace a Job's uploader gets."""
        recording = [name for name, n in session.nodes.items() if n.job is None and n.status == "running"]
        if not recording or self.now < session.expires_at:
            return bool(recording)
        if self.now >= session.expires_at + timedelta(seconds=self.settings.upload_grace_seconds):
            return False
        return any(self._manifest(session, name) is None for name in recording)

    def _manifest(self, session: CaptureSession, node: str) -> Obj | None:
        return read_window_manifest(
            self.deps.aws.s3, self.settings.capture_bucket, f"{session.s3_prefix}{node}/"
        )

    def _awaits_index(
        self, session: CaptureSession, manifests: dict[str, Obj | None], unindexed: dict[str, list[Obj]]
    ) -> datetime | None:
        """Whether the session stays open for files its nodes' manifests list in S3 that the index does not
        hold yet: the indexer may still be running, or Lambda retrying it, for INDEX_WAIT_SECONDS after the
        manifest was written (its files' S3 events were sent by then); past that it closes with them said.
        A manifest is dated by its node's clock, so the wait starts no later than the last moment a node can
        write one (its pod stopped at the expiry and given its termination grace): a node clock days ahead
        does not keep the capture open past the sweeps that still look for it. Returns when the wait ends,
        or None when the session closes now."""
        waiting = {name: len(listed) for name, listed in unindexed.items() if listed}
        if not waiting:
            return None
        written = [listed_at(manifest) for name in waiting if (manifest := manifests[name]) is not None]
        last = timedelta(seconds=self.settings.upload_grace_seconds + TERMINATION_MARGIN_SECONDS)
        bound = session.expires_at + last
        since = min(max((moment for moment in written if moment is not None), default=bound), bound)
        until = since + timedelta(seconds=self.settings.index_wait_seconds)
        count, named = sum(waiting.values()), sorted(waiting.items())[:NAMED_TOGETHER]
        nodes = ", ".join(f"{name} ({n})" for name, n in named)
        nodes += f" and {len(waiting) - len(named)} more node(s)" if len(waiting) > len(named) else ""
        said = {"capture_id": session.capture_id, "unindexed_files": count, "nodes": len(waiting)}
        if self.now < until:
            self.report.awaiting_index[session.capture_id] = count
            logger.info(
                f"capture {session.capture_id} stays open: {count} file(s) its nodes' manifests list in S3 "
                f"are not indexed yet, on {nodes}; the indexer may still be running or retrying; it closes "
                f"once they are, or at {iso_utc(until)} with what is known",
                extra=said,
            )
            return until
        logger.warning(
            f"capture {session.capture_id}: {count} file(s) in S3 still not indexed at {iso_utc(until)}, "
            f"on {nodes}: closing with their manifests' counts",
            extra=said,
        )
        return None

    def close(self, session: CaptureSession) -> None:
        """Give the session its final status and verdict from what reached S3, its dropped count and top
        findings: a node counts as captured only when its manifest or indexed files prove packets. A file a
        manifest lists that is not indexed as listed (its key, at its stored size) keeps the session open
        (``_awaits_index``), and past that wait is counted as its manifest counts it, instead of any earlier
        version of it indexed, and said in the verdict."""
        files, names = self.deps.store.files_of_capture(session.capture_id), list(session.nodes)
        with ThreadPoolExecutor(max_workers=self.settings.api_parallelism) as pool:
            read = pool.map(lambda name: self._manifest(session, name), names)
            manifests = dict(zip(names, read, strict=True))
            indexed = {f.s3_key: f.size for f in files}
            unindexed = {name: unindexed_files(manifest, indexed) for name, manifest in manifests.items()}
            if not session.locks_freed:  # nothing runs there any more, whether it closes now or later
                free = self.deps.store.release_node
                list(pool.map(lambda name: free(session.cluster, name, session.capture_id), names))
        if (until := self._awaits_index(session, manifests, unindexed)) is not None:
            if not session.locks_freed:  # its verdict no longer says it is capturing: its nodes are done
                said = index_wait_verdict(until)
                self.deps.store.mark_index_wait(session.capture_id, self.now, session.status, said)
            return
        for name, node in session.nodes.items():
            if node.status == "running" and node.job is None:  # served from a recorder's ring
                status, reason = window_verdict(manifests[name])
                node = node.model_copy(update={"status": status, "reason": reason})
            elif node.status in OPEN_NODE_STATES:
                stopped = session.status == "stopping"
                node = node.model_copy(
                    update={
                        "status": "stopped" if stopped else "completed",
                        "reason": "stopped early on request"
                        if stopped
                        else "its Job finished and was removed before a sweep saw it",
                    }
                )
            session.nodes[name] = proven(node, node_evidence(files, name, manifests[name], unindexed[name]))
        dropped = sum(dropped_packets(m) for m in manifests.values() if m is not None)
        self.deps.store.set_dropped(session.capture_id, dropped)
        session.findings = top_findings(f.summary for f in files)
        previous = session.status
        late = [f for listed in unindexed.values() for f in listed]
        counted = counted_files(files, late)
        packets = sum(f.packets for f in counted) + listed_packets(late)
        session.status, session.verdict = session_outcome(
            session.nodes, len(counted) + len(late), packets, dropped, session.findings, unindexed=len(late)
        )
        session.ended_at = self.now
        if self.deps.store.replace_session(session, expected_status=previous, same_attempt=True):
            self.report.closed[session.capture_id] = session.status
            log = logger.info if session.status == "completed" else logger.warning
            log(f"capture {session.capture_id} {session.status}: {session.verdict}")
            self.announce(self.deps.store.get_session(session.capture_id) or session)

    def announce(self, session: CaptureSession) -> None:
        """Hand the end to the report function; if that fails, send the end notification without a report."""
        bus = self.settings.lifecycle_bus_name
        problem = announce_closed(self.deps.aws.events, bus, session) if bus else "no lifecycle bus is set"
        if problem is None:
            return
        logger.warning(f"capture {session.capture_id}: {problem}; notifying without a report")
        outcome = ReportOutcome(problem=problem)
        if notify_end(self.deps.sns, self.settings, session, outcome):
            self.deps.store.record_end_notice(session.capture_id, self.now, report_key="")


def dropped_packets(manifest: dict[str, Any]) -> int:
    """Packets a node lost, by its agent's manifest: tcpdump's kernel drops, the budget's drops, the
    packets tcpdump counted but never wrote (stopped mid-write), and those left in the spool when the
    upload role had to stop."""
    completion = (manifest.get("capture") or {}).get("completion") or {}
    counters = (completion.get("tcpdump") or {}).get("counters") or {}
    dropped = manifest.get("dropped") or {}
    return (
        int(counters.get("dropped_by_kernel") or 0)
        + sum(int(item.get("packets") or 0) for item in dropped.get("items", []))
        + int(dropped.get("unwritten_packets") or 0)
        + int(dropped.get("not_uploaded_packets") or 0)
    )


def sweep(deps: Deps, clusters: Iterable[str]) -> list[SweepReport]:
    """One sweep of every cluster; a cluster that fails is reported and the others still swept."""
    reports: list[SweepReport] = []
    for name in clusters:
        try:
            reports.append(_Sweep(deps, name).run())
        except CaptureError as error:
            logger.error(f"sweep of cluster {name} failed: {error.message}", extra={"error": error.to_dict()})
            reports.append(SweepReport(name, errors=[error.message]))
    return reports
