"""Launching a capture on its nodes: a node lock, then a Job (or the node's recorder asked for its window)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException

from eks_capture.captures.context import ClusterContext, snapshot
from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Request, spec_of
from eks_capture.captures.recorder import DEFAULT_LOOKBACK_SECONDS, RecorderPod, plan_window, request_window
from eks_capture.captures.targets import NodeMatch
from eks_capture.errors import CaptureError
from eks_capture.kube.calls import Cluster
from eks_capture.kube.jobs import jobs_of_capture
from eks_capture.kube.manifests.job import capture_job, job_name
from eks_capture.store.claims import CLAIMS_PER_TRANSACTION
from eks_capture.store.keys import is_transient, refusal_code, refusal_in_words
from eks_capture.store.sessions import NodeCapture

logger = Logger(child=True)


def snapshot_context(
    request: Request, raw_nodes: list[dict[str, Any]], raw_pods: list[dict[str, Any]] | None, deps: Deps
) -> ClusterContext | None:
    """Who is who in the cluster as the capture starts (from the lists already made, where there are
    some); None (logged) when the cluster would not say."""
    try:
        return snapshot(
            deps.cluster(request.cluster),
            taken_at=deps.now(),
            capture_id=request.capture_id,
            nodes=raw_nodes,
            pods=raw_pods,
        )
    except (CaptureError, ApiException, ValueError) as error:
        logger.warning(
            "no cluster context for this capture: findings will name IPs only",
            extra={"capture_id": request.capture_id, "error": str(error)},
        )
        return None


@dataclass(frozen=True)
class LockRefusal:
    """A batch of node locks DynamoDB refused past the retries; none of them was taken (a refused
    transaction writes nothing). ``code``: DynamoDB's code, which each node's record carries (a session of
    1,000 nodes each with DynamoDB's whole message would pass DynamoDB's 400 KB item size); ``why``: with
    the attempts and DynamoDB's message, said once. ``transient``: a later try may pass (throttling)."""

    nodes: tuple[str, ...]
    code: str
    why: str
    transient: bool

    @classmethod
    def of(cls, nodes: tuple[str, ...], error: ClientError) -> LockRefusal:
        """The refusal of the batch of ``nodes``, from DynamoDB's answer."""
        return cls(nodes, refusal_code(error), refusal_in_words(error), is_transient(error))

    @property
    def reason(self) -> str:
        """Each refused node's reason."""
        return f"node lock not taken: {self.code}"


@dataclass(frozen=True)
class Launched:
    """Each node's record and why it was skipped (None when it was not), in the order of the matches; the
    lock batches DynamoDB refused, and the nodes of theirs left without a Job (recorded ``failed``)."""

    results: list[tuple[NodeCapture, str | None]]
    refusals: list[LockRefusal]
    unlocked: frozenset[str] = frozenset()

    @property
    def worth_retrying(self) -> bool:
        """No node lock was taken (each node refused, or held by another capture) nor Job found, and a later
        try may take the refused ones (throttling): the event is retried rather than the capture failed."""
        not_held = sum(1 for _record, skipped in self.results if skipped is None)
        return 0 < len(self.unlocked) == not_held and any(r.transient for r in self.refusals)


def launch(
    matches: Sequence[NodeMatch],
    request: Request,
    cluster: Cluster,
    lock_until: datetime,
    deps: Deps,
    recorders: dict[str, RecorderPod] | None = None,
) -> Launched:
    """Claim the nodes of ``matches``, one transaction per ``CLAIMS_PER_TRANSACTION``, and start each
    claimed node's Job (or ask its recorder), ``api_parallelism`` calls at once.

    A batch's Jobs are created as soon as its locks are held (whichever batch that is first), while the
    other batches' are being taken. A batch DynamoDB refuses past the retries (throttled, access denied)
    costs its own nodes only: each is recorded ``failed`` with DynamoDB's error code, and the other
    batches go on.
    """
    batches = [
        matches[i : i + CLAIMS_PER_TRANSACTION] for i in range(0, len(matches), CLAIMS_PER_TRANSACTION)
    ]
    refusals: list[LockRefusal] = []
    unlocked: dict[str, NodeCapture] = {}
    with ThreadPoolExecutor(max_workers=deps.settings.api_parallelism) as pool:
        locks = {pool.submit(lock_nodes, batch, request, lock_until, deps): batch for batch in batches}
        starts: dict[str, Future[tuple[NodeCapture, str | None]]] = {}
        for locked in as_completed(locks):
            batch = locks[locked]
            try:
                held = locked.result()
            except ClientError as error:
                refusal = refused(batch, error, request)
                refusals.append(refusal)
                unlocked |= {
                    m.node.name: node_record(m).model_copy(
                        update={"status": "failed", "reason": refusal.reason}
                    )
                    for m in batch
                }
                continue
            starts |= {
                match.node.name: pool.submit(
                    start_node, match, held.get(match.node.name), request, cluster, deps, recorders
                )
                for match in batch
            }
        results = [
            (unlocked[name], None) if name in unlocked else starts[name].result()
            for name in (match.node.name for match in matches)
        ]
    if unlocked:
        made = made_before(unlocked, request, cluster, deps)
        results = [(made.get(record.node, record), skipped) for record, skipped in results]
        unlocked = {name: record for name, record in unlocked.items() if name not in made}
    return Launched(results, refusals, frozenset(unlocked))


def made_before(
    refused: dict[str, NodeCapture], request: Request, cluster: Cluster, deps: Deps
) -> dict[str, NodeCapture]:
    """The records of refused nodes where an earlier attempt of this capture made the Job before it died
    (Lambda's retry of an attempt killed by its timeout): ``pending`` with that Job, which runs whatever
    this attempt's locks (the earlier attempt's lock is held still). Nodes served from a recorder's ring
    leave no Job to find and stay ``failed``."""
    namespace = deps.settings.capture_namespace
    try:
        jobs = jobs_of_capture(cluster, namespace, request.capture_id)
    except (CaptureError, ApiException) as error:
        logger.warning(
            "could not look for Jobs an earlier attempt made on the nodes whose locks were refused",
            extra={"capture_id": request.capture_id, "error": str(error)},
        )
        return {}
    made = {job.node: job.name for job in jobs if job.node in refused}
    return {
        node: refused[node].model_copy(update={"status": "pending", "reason": "", "job": name})
        for node, name in made.items()
    }


def refused(batch: Sequence[NodeMatch], error: ClientError, request: Request) -> LockRefusal:
    """The batch's refusal, logged: DynamoDB's answer in words, and whether a later try may pass."""
    refusal = LockRefusal.of(tuple(m.node.name for m in batch), error)
    logger.warning(
        f"node locks not taken for {len(batch)} node(s) of capture {request.capture_id}: {refusal.why}",
        extra={
            "capture_id": request.capture_id,
            "nodes": list(refusal.nodes),
            "transient": refusal.transient,
        },
    )
    return refusal


def node_record(match: NodeMatch) -> NodeCapture:
    """A chosen node's record before anything is done there: which node, and what chose it."""
    node = match.node
    return NodeCapture(node=node.name, instance_id=node.instance_id, matched_by="; ".join(match.matched_by))


def lock_nodes(
    matches: Sequence[NodeMatch], request: Request, lock_until: datetime, deps: Deps
) -> dict[str, str]:
    """Claim the nodes of ``matches`` (at most CLAIMS_PER_TRANSACTION) for the capture: those another
    capture holds, each with its holder."""
    names = [match.node.name for match in matches]
    return deps.store.acquire_nodes(request.cluster, names, request.capture_id, lock_until, deps.now())


def start_node(
    match: NodeMatch,
    holder: str | None,
    request: Request,
    cluster: Cluster,
    deps: Deps,
    recorders: dict[str, RecorderPod] | None = None,
) -> tuple[NodeCapture, str | None]:
    """Create the Job of a node ``lock_nodes`` claimed (``holder`` None; else the capture holding it):
    (the node's record, None) or (_, why it was skipped)."""
    node = match.node
    record = node_record(match)
    if holder is not None:
        return record, f"already being captured by {holder}"
    if recorders and node.name in recorders:
        return ask_recorder(record, recorders[node.name], request, cluster, deps), None
    job = capture_job(spec_of(request), node, deps.settings)
    try:
        cluster.create_job(deps.settings.capture_namespace, job)
    except CaptureError as error:
        deps.store.release_node(request.cluster, node.name, request.capture_id)
        return record.model_copy(update={"status": "failed", "reason": error.message}), None
    return record.model_copy(update={"job": job_name(request.capture_id, node.name)}), None


def ask_recorder(
    record: NodeCapture, recorder: RecorderPod, request: Request, cluster: Cluster, deps: Deps
) -> NodeCapture:
    """The node's recorder uploads the window instead of a Job starting there (no pod start delay)."""
    window = plan_window(
        request.trigger_at or request.started_at,
        DEFAULT_LOOKBACK_SECONDS if request.lookback_seconds is None else request.lookback_seconds,
        request.options.duration_seconds,
        recorder.ring_seconds,
    )
    try:
        request_window(cluster, deps.settings.capture_namespace, recorder, request.capture_id, window)
    except (CaptureError, ApiException) as error:
        deps.store.release_node(request.cluster, record.node, request.capture_id)
        reason = error.message if isinstance(error, CaptureError) else str(error.reason)
        return record.model_copy(update={"status": "failed", "reason": f"recorder {recorder.name}: {reason}"})
    reason = f"recorder {recorder.name} asked for its window; {window.note}"
    return record.model_copy(update={"status": "running", "reason": reason})
