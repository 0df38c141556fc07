"""Capture sessions in the index: the record of every decision about one capture, and its queries.

EventBridge delivers at least once and alarms flap, so every write that guards against duplicates is a
conditional write: a retry can never double-start a capture.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from eks_capture.store.keys import (
    SESSIONS_HIGH,
    SESSIONS_LOW,
    Table,
    alarm_pk,
    cluster_pk,
    deserialize,
    iso_key,
    serialize,
    serialize_value,
    session_index_keys,
    session_key,
)
from eks_capture.store.sizes import (
    FINDING_BYTES,
    MATCHED_BY_BYTES,
    VERDICT_BYTES,
    clipped,
    kept_reason,
    named_skips,
    node_text_limit,
)
from eks_capture.times import iso_utc

SessionStatus = Literal["starting", "running", "stopping", "completed", "failed", "rejected"]
#: A session in one of these has not ended: the sweep may still close it.
OPEN_SESSION_STATES: tuple[SessionStatus, ...] = ("starting", "running", "stopping")
NodeStatus = Literal[
    "pending", "running", "completed", "stopped", "deadline_exceeded", "failed", "never_started"
]


class Trigger(BaseModel):
    """Who or what asked for the capture, and why, in the words an operator will read."""

    kind: Literal["alarm", "manual"]
    reason: str
    event_id: str
    alarm_name: str | None = None
    alarm_arn: str | None = None
    requested_by: str | None = None


class NodeCapture(BaseModel):
    """One node's part of a capture: its Job and, once it ends, its verdict."""

    node: str
    instance_id: str | None = None
    matched_by: str = ""
    job: str | None = None
    status: NodeStatus = "pending"
    reason: str = ""


class Totals(BaseModel):
    files: int = 0
    packets: int = 0
    bytes: int = 0
    dropped: int = 0


class CaptureSession(BaseModel):
    """Everything decided about one capture: the record an operator reads after the incident."""

    capture_id: str
    cluster: str
    status: SessionStatus = "starting"
    trigger: Trigger
    created_at: datetime
    expires_at: datetime
    duration_seconds: int
    filter: str = ""
    snaplen: int = 0
    preset: str | None = None
    limited: dict[str, str] = Field(default_factory=dict)  # what the alarm caps clipped or refused, and why
    nodes: dict[str, NodeCapture] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    totals: Totals = Field(default_factory=Totals)
    findings: list[str] = Field(default_factory=list)
    s3_prefix: str = ""
    ended_at: datetime | None = None
    verdict: str = ""
    #: When the trigger's latest attempt began taking locks and making Jobs (None: a session stored before
    #: attempts were marked). The sweep leaves a ``starting`` session alone for a while after it, and closes
    #: one only while it is unchanged, so a retry and a sweep never both act on the capture.
    attempted_at: datetime | None = None
    #: When a sweep first kept the session open for its files' indexing, having freed its node locks (None:
    #: none has); later sweeps of that wait free them no more.
    index_wait_since: datetime | None = None

    @property
    def locks_freed(self) -> bool:
        """Whether a sweep freed the node locks since the trigger's latest attempt could take them."""
        since, attempted = self.index_wait_since, self.attempted_at
        return since is not None and (attempted is None or since >= attempted)


def node_attribute(node: NodeCapture, nodes: int) -> dict[str, Any]:
    """A node's record as a session of ``nodes`` nodes keeps it (``_kept_node``)."""
    return _kept_node(node.model_dump(mode="json"), nodes)


def _kept_node(dumped: dict[str, Any], nodes: int) -> dict[str, Any]:
    """A node's dumped record as a session of ``nodes`` nodes keeps it: its reason and what matched it
    within their share of the item (store/sizes.py). It trims the dump the session's own dump made, so a
    session write of 1,000 nodes dumps each node once."""
    return {
        **dumped,
        "reason": kept_reason(dumped["reason"], nodes),
        "matched_by": clipped(dumped["matched_by"], node_text_limit(MATCHED_BY_BYTES, nodes)),
    }


def session_attributes(session: CaptureSession, exclude: set[str] | None = None) -> dict[str, Any]:
    """The session's attributes (but ``exclude``) as its item keeps them: each node's text and the verdict
    within their share of DynamoDB's 400 KB, however many nodes and whatever the API said to each."""
    data = session.model_dump(mode="json", exclude=exclude)
    if "nodes" in data:
        data["nodes"] = {name: _kept_node(node, len(session.nodes)) for name, node in data["nodes"].items()}
    if "skipped" in data:
        data["skipped"] = named_skips(session.skipped)
    if "findings" in data:
        data["findings"] = [clipped(finding, FINDING_BYTES) for finding in session.findings]
    if "verdict" in data:
        data["verdict"] = clipped(session.verdict, VERDICT_BYTES)
    return data


class Sessions(Table):
    """The sessions part of the store."""

    def create_session(self, session: CaptureSession) -> bool:
        """Store a new session; False when one with this id exists already (a redelivered event)."""
        item = {
            **session_key(session.capture_id),
            **session_index_keys(session.cluster, session.created_at, session.trigger.alarm_name),
            **session_attributes(session),
        }
        return self._conditional(
            "put_item", Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
        )

    def replace_session(
        self, session: CaptureSession, expected_status: SessionStatus, *, same_attempt: bool = False
    ) -> bool:
        """Write the session's decisions over one still in ``expected_status`` (with ``same_attempt``: and
        still marked with the session's ``attempted_at``, no trigger attempt begun since it was read);
        False if it moved on.

        Totals are left alone: the indexer adds to them concurrently, and a whole-item put would erase
        what it added.
        """
        data = session_attributes(
            session, exclude={"totals", "capture_id", "cluster", "created_at", "trigger"}
        )
        names = {f"#f{i}": name for i, name in enumerate(data)}
        values = {f":v{i}": value for i, value in enumerate(data.values())}
        values[":expected"] = expected_status
        condition = "#status = :expected"
        if same_attempt and data["attempted_at"] is None:  # stored without one, or as NULL
            condition += " AND (attribute_not_exists(attempted_at) OR attribute_type(attempted_at, :null))"
            values[":null"] = "NULL"
        elif same_attempt:
            condition += " AND attempted_at = :attempted"
            values[":attempted"] = data["attempted_at"]
        return self._conditional(
            "update_item",
            Key=serialize(session_key(session.capture_id)),
            UpdateExpression="SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
            ConditionExpression=condition,
            ExpressionAttributeNames={**names, "#status": "status"},
            ExpressionAttributeValues={k: serialize_value(v) for k, v in values.items()},
        )

    def mark_index_wait(self, capture_id: str, at: datetime, status: SessionStatus, verdict: str) -> bool:
        """Mark the session (still in ``status``) waiting for its indexing since ``at``, its node locks
        freed, with the ``verdict`` that says so; False when marked already or moved on (the next sweep
        frees the locks again: no harm)."""
        return self._conditional(
            "update_item",
            Key=serialize(session_key(capture_id)),
            UpdateExpression="SET index_wait_since = :at, verdict = :verdict",
            ConditionExpression="#status = :status AND "
            "(attribute_not_exists(index_wait_since) OR attribute_type(index_wait_since, :null))",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize(
                {
                    ":at": iso_utc(at, micros=True),
                    ":status": status,
                    ":null": "NULL",
                    ":verdict": clipped(verdict, VERDICT_BYTES),
                }
            ),
        )

    def set_dropped(self, capture_id: str, dropped: int) -> None:
        """Packets lost on the nodes (tcpdump's kernel drops and files dropped for the spool budget)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=serialize(session_key(capture_id)),
            UpdateExpression="SET totals.dropped = :dropped",
            ExpressionAttributeValues=serialize({":dropped": dropped}),
            ConditionExpression="attribute_exists(pk)",
        )

    def sessions(
        self,
        cluster: str,
        *,
        since: datetime | None = None,
        statuses: tuple[SessionStatus, ...] = (),
        newest_first: bool = True,
        limit: int | None = None,
    ) -> list[CaptureSession]:
        """The cluster's captures started at or after ``since`` (all when None), in ``statuses`` (any
        when empty), by start time, at most ``limit`` of them."""
        values: dict[str, Any] = {
            ":pk": cluster_pk(cluster),
            ":low": f"{SESSIONS_LOW}{iso_key(since)}" if since else SESSIONS_LOW,
            ":high": SESSIONS_HIGH,
        }
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            "ScanIndexForward": not newest_first,
        }
        if statuses:
            allowed = {f":s{i}": state for i, state in enumerate(statuses)}
            values |= allowed
            query["FilterExpression"] = f"#status IN ({', '.join(allowed)})"
            query["ExpressionAttributeNames"] = {"#status": "status"}
        found: list[CaptureSession] = []
        for page in self._client.get_paginator("query").paginate(
            **query, ExpressionAttributeValues=serialize(values)
        ):
            for item in page.get("Items", []):
                found.append(CaptureSession.model_validate(deserialize(item)))
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def open_sessions(self, cluster: str, since: datetime) -> list[CaptureSession]:
        """The cluster's captures started after ``since`` that have not ended yet, oldest first."""
        return self.sessions(cluster, since=since, statuses=OPEN_SESSION_STATES, newest_first=False)

    def get_session(self, capture_id: str) -> CaptureSession | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=serialize(session_key(capture_id)), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return CaptureSession.model_validate(deserialize(response["Item"]))

    def get_sessions(self, capture_ids: Iterable[str]) -> dict[str, CaptureSession]:
        """The sessions of ``capture_ids`` that exist, by id, read as get_session reads one (consistently),
        100 to a call: a sweep over a thousand captures makes 10 calls, not a thousand."""
        items = self._batch_get([session_key(capture_id) for capture_id in sorted(set(capture_ids))])
        sessions = (CaptureSession.model_validate(item) for item in items)
        return {session.capture_id: session for session in sessions}

    def settle_node(self, capture_id: str, node: NodeCapture, nodes: int) -> bool:
        """Record a node's final verdict once, as a session of ``nodes`` nodes keeps it; False when a
        concurrent sweep recorded one already."""
        return self._conditional(
            "update_item",
            Key=serialize(session_key(capture_id)),
            UpdateExpression="SET nodes.#node = :node",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(nodes.#node) "
            "OR nodes.#node.#status IN (:pending, :running))",
            ExpressionAttributeNames={"#node": node.node, "#status": "status"},
            ExpressionAttributeValues=serialize(
                {":node": node_attribute(node, nodes), ":pending": "pending", ":running": "running"}
            ),
        )

    def set_status(
        self,
        capture_id: str,
        status: SessionStatus,
        *,
        verdict: str | None = None,
        only_from: tuple[SessionStatus, ...] = (),
        ended_at: datetime | None = None,
    ) -> bool:
        """Move a session to ``status``; with ``only_from``, only from those states (False otherwise)."""
        sets = ["#status = :status"]
        values: dict[str, Any] = {":status": status}
        if verdict is not None:
            sets.append("verdict = :verdict")
            values[":verdict"] = clipped(verdict, VERDICT_BYTES)
        if ended_at is not None:
            sets.append("ended_at = :ended")
            values[":ended"] = iso_key(ended_at)
        condition = "attribute_exists(pk)"
        if only_from:
            allowed = {f":from{i}": state for i, state in enumerate(only_from)}
            values.update(allowed)
            condition += f" AND #status IN ({', '.join(allowed)})"
        return self._conditional(
            "update_item",
            Key=serialize(session_key(capture_id)),
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize(values),
            ConditionExpression=condition,
        )

    def sessions_for_alarm(self, alarm_name: str) -> list[CaptureSession]:
        """The captures an alarm started, newest first."""
        items = self._query_all(
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :pk",
            ExpressionAttributeValues=serialize({":pk": alarm_pk(alarm_name)}),
            ScanIndexForward=False,
        )
        return [CaptureSession.model_validate(i) for i in items]
