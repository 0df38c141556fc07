"""Capture sessions, node locks, capture slots, alarm cooldowns and file items in the one DynamoDB index.

The table layout and its query patterns are in docs/design.md. Every write that guards against
duplicates (EventBridge delivers at least once, alarms flap, the indexer sees an object twice) is a
conditional write, so a retry can never double-start a capture or double-count a file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

SessionStatus = Literal["starting", "running", "stopping", "completed", "failed", "rejected"]
#: A session in one of these has not ended: the sweep may still close it.
OPEN_SESSION_STATES: tuple[SessionStatus, ...] = ("starting", "running", "stopping")
NodeStatus = Literal[
    "pending", "running", "completed", "stopped", "deadline_exceeded", "failed", "never_started"
]

SESSION_SK = "SESSION"
MAX_FILE_SPAN = timedelta(hours=1)  # the longest a file may cover; bounds the window query (docs/design.md)

# A lock or cooldown is free when nobody holds it, when this capture holds it (a retry), or once expired.
_CLAIM_CONDITION = "attribute_not_exists(pk) OR capture_id = :id OR #ttl < :now"
# Why DynamoDB cancels a transaction that may pass if tried again; botocore retries none of them, as
# they come as TransactionCanceledException (throttled single-item calls it retries itself).
_TRANSIENT_CANCELLATIONS = {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"}
TRANSACTION_ATTEMPTS = 8
# Throttled single-item calls: botocore's standard mode (jittered backoff from 1 s) with 8 attempts, not its 4
# for DynamoDB, so a burst that throttles 30 % of writes fails ~1 in 15,000 calls instead of ~1 in 120 and
# seldom leaves a capture to Lambda's retry a minute later.
DYNAMODB_RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})
TRANSACTION_BACKOFF_SECONDS = 0.05  # the first retry waits up to this, each next one up to twice as long

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


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
    nodes: dict[str, NodeCapture] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    totals: Totals = Field(default_factory=Totals)
    findings: list[str] = Field(default_factory=list)
    s3_prefix: str = ""
    ended_at: datetime | None = None
    verdict: str = ""


class FileRecord(BaseModel):
    """One pcap object in S3 and what the analyzer found in it."""

    capture_id: str
    cluster: str
    node: str
    s3_key: str
    size: int
    packets: int
    bytes: int
    first_ts: datetime | None = None  # None for a file without packets (stored without the attribute)
    last_ts: datetime | None = None
    instance_id: str | None = None
    link_type: str = ""
    partial: bool = False
    partial_reason: str = ""
    pre_trigger: bool = False
    summary: dict[str, Any] = Field(default_factory=dict)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_dynamo(value: Any) -> Any:
    """JSON-mode data with floats as Decimals, the only numbers DynamoDB takes."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _cancellation_reasons(error: ClientError) -> list[str | None]:
    return [r.get("Code") for r in error.response.get("CancellationReasons", [])]


def _is_transient_cancellation(error: ClientError) -> bool:
    """A transaction cancelled for capacity or a concurrent transaction only, not for its conditions."""
    reasons = set(_cancellation_reasons(error)) - {"None", None}
    return bool(reasons) and reasons <= _TRANSIENT_CANCELLATIONS


def _is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    }


class CaptureStore:
    """The capture index table, spoken to in capture words."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client or boto3.client("dynamodb", config=DYNAMODB_RETRIES)

    # -- sessions ---------------------------------------------------------------------------------

    @staticmethod
    def _session_item(session: CaptureSession) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": f"CAPTURE#{session.capture_id}",
            "sk": SESSION_SK,
            "gsi1pk": f"CLUSTER#{session.cluster}",
            "gsi1sk": f"SESSION#{_iso(session.created_at)}",
            **session.model_dump(mode="json"),
        }
        if session.trigger.alarm_name:
            item["gsi2pk"] = f"ALARM#{session.trigger.alarm_name}"
            item["gsi2sk"] = _iso(session.created_at)
        return item

    def create_session(self, session: CaptureSession) -> bool:
        """Store a new session; False when one with this id exists already (a redelivered event)."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_serialize(self._session_item(session)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def replace_session(self, session: CaptureSession, expected_status: SessionStatus) -> bool:
        """Write the session's decisions over one still in ``expected_status``; False if it moved on.

        Totals are left alone: the indexer adds to them concurrently, and a whole-item put would erase
        what it added.
        """
        data = session.model_dump(
            mode="json", exclude={"totals", "capture_id", "cluster", "created_at", "trigger"}
        )
        names = {f"#f{i}": name for i, name in enumerate(data)}
        values = {f":v{i}": value for i, value in enumerate(data.values())}
        values[":expected"] = expected_status
        serialized = {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()}
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": f"CAPTURE#{session.capture_id}", "sk": SESSION_SK}),
                UpdateExpression="SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues=serialized,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def set_dropped(self, capture_id: str, dropped: int) -> None:
        """Packets lost on the nodes (tcpdump's kernel drops and files dropped for the spool budget)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
            UpdateExpression="SET totals.dropped = :dropped",
            ExpressionAttributeValues=_serialize({":dropped": dropped}),
            ConditionExpression="attribute_exists(pk)",
        )

    def open_sessions(self, cluster: str, since: datetime) -> list[CaptureSession]:
        """The cluster's captures started after ``since`` that have not ended yet."""
        items = self._query_all(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            FilterExpression=f"#status IN ({', '.join(f':{state}' for state in OPEN_SESSION_STATES)})",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=_serialize(
                {
                    ":pk": f"CLUSTER#{cluster}",
                    ":low": f"SESSION#{_iso(since)}",
                    ":high": "SESSION#~",
                    **{f":{state}": state for state in OPEN_SESSION_STATES},
                }
            ),
        )
        return [CaptureSession.model_validate(i) for i in items]

    def get_session(self, capture_id: str) -> CaptureSession | None:
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return CaptureSession.model_validate(_deserialize(response["Item"]))

    def save_node(self, capture_id: str, node: NodeCapture) -> None:
        """Record one node's state on its session (nodes are a map, so nodes never overwrite each other)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
            UpdateExpression="SET nodes.#node = :node",
            ExpressionAttributeNames={"#node": node.node},
            ExpressionAttributeValues=_serialize({":node": node.model_dump(mode="json")}),
            ConditionExpression="attribute_exists(pk)",
        )

    def settle_node(self, capture_id: str, node: NodeCapture) -> bool:
        """Record a node's final verdict once; False when a concurrent sweep recorded one already."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
                UpdateExpression="SET nodes.#node = :node",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(nodes.#node) "
                "OR nodes.#node.#status IN (:pending, :running))",
                ExpressionAttributeNames={"#node": node.node, "#status": "status"},
                ExpressionAttributeValues=_serialize(
                    {":node": node.model_dump(mode="json"), ":pending": "pending", ":running": "running"}
                ),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def save_skipped(self, capture_id: str, skipped: dict[str, str]) -> None:
        if not skipped:
            return
        names = {f"#s{i}": node for i, node in enumerate(skipped)}
        values = {f":s{i}": reason for i, reason in enumerate(skipped.values())}
        self._client.update_item(
            TableName=self.table_name,
            Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
            UpdateExpression="SET "
            + ", ".join(f"skipped.{n} = {v}" for n, v in zip(names, values, strict=True)),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_serialize(values),
            ConditionExpression="attribute_exists(pk)",
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
            values[":verdict"] = verdict
        if ended_at is not None:
            sets.append("ended_at = :ended")
            values[":ended"] = _iso(ended_at)
        condition = "attribute_exists(pk)"
        if only_from:
            allowed = {f":from{i}": state for i, state in enumerate(only_from)}
            values.update(allowed)
            condition += f" AND #status IN ({', '.join(allowed)})"
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_serialize({"pk": f"CAPTURE#{capture_id}", "sk": SESSION_SK}),
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_serialize(values),
                ConditionExpression=condition,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def list_sessions(self, cluster: str, limit: int = 50) -> list[CaptureSession]:
        """The cluster's captures, newest first."""
        response = self._client.query(
            TableName=self.table_name,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :prefix)",
            ExpressionAttributeValues=_serialize({":pk": f"CLUSTER#{cluster}", ":prefix": "SESSION#"}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [CaptureSession.model_validate(_deserialize(i)) for i in response.get("Items", [])]

    def sessions_for_alarm(self, alarm_name: str) -> list[CaptureSession]:
        response = self._client.query(
            TableName=self.table_name,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :pk",
            ExpressionAttributeValues=_serialize({":pk": f"ALARM#{alarm_name}"}),
            ScanIndexForward=False,
        )
        return [CaptureSession.model_validate(_deserialize(i)) for i in response.get("Items", [])]

    # -- node locks and alarm cooldowns -----------------------------------------------------------

    def _claim(self, pk: str, capture_id: str, until: datetime, now: datetime) -> str | None:
        """Take the claim item ``pk`` for ``capture_id`` until ``until``; None, or the capture holding it."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_serialize(
                    {
                        "pk": pk,
                        "sk": pk.split("#", 1)[0],
                        "capture_id": capture_id,
                        "ttl": int(until.timestamp()),
                    }
                ),
                ConditionExpression=_CLAIM_CONDITION,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=_serialize({":id": capture_id, ":now": int(now.timestamp())}),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            holder = self._client.get_item(
                TableName=self.table_name,
                Key=_serialize({"pk": pk, "sk": pk.split("#", 1)[0]}),
                ConsistentRead=True,
            ).get("Item")
            return str(_deserialize(holder)["capture_id"]) if holder else "another capture"
        return None

    def _release(self, pk: str, capture_id: str) -> None:
        """Drop the claim item ``pk`` if ``capture_id`` still holds it (never another capture's)."""
        try:
            self._client.delete_item(
                TableName=self.table_name,
                Key=_serialize({"pk": pk, "sk": pk.split("#", 1)[0]}),
                ConditionExpression="capture_id = :id",
                ExpressionAttributeValues=_serialize({":id": capture_id}),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def acquire_node(
        self, cluster: str, node: str, capture_id: str, until: datetime, now: datetime
    ) -> str | None:
        """Claim ``node`` for ``capture_id`` until ``until``; None on success, else the capture holding it.

        A lock held by the same capture is re-acquired (a retried invocation), an expired one is taken over.
        One conditional put per node, run in parallel by the caller: measured against 100-item
        transactions, no faster on DynamoDB and three times slower on the local cloud.
        """
        return self._claim(f"LOCK#{cluster}#{node}", capture_id, until, now)

    def release_node(self, cluster: str, node: str, capture_id: str) -> None:
        """Free ``node`` if ``capture_id`` still holds it (never another capture's lock)."""
        self._release(f"LOCK#{cluster}#{node}", capture_id)

    def claim_cooldown(self, alarm_name: str, capture_id: str, until: datetime, now: datetime) -> str | None:
        """Start the alarm's cooldown for ``capture_id``; None on success, else the capture in cooldown."""
        return self._claim(f"COOLDOWN#{alarm_name}", capture_id, until, now)

    def release_cooldown(self, alarm_name: str, capture_id: str) -> None:
        """End the alarm's cooldown if ``capture_id`` holds it (a capture that started nothing)."""
        self._release(f"COOLDOWN#{alarm_name}", capture_id)

    def claim_capture_slot(
        self,
        cluster: str,
        capture_id: str,
        slots: int,
        until: datetime,
        now: datetime,
        ended: Callable[[str], bool],
    ) -> int | None:
        """One of the cluster's ``slots`` capture slots for ``capture_id`` until ``until`` (re-entrant),
        taking over a slot whose capture ``ended``; its index, or None when every slot is held.

        The concurrent-capture cap counts the cluster's Jobs, which appear only after the check, so
        invocations running at once could each pass it; a slot is claimed before any Job is created.
        """
        held: dict[str, str] = {}
        for index in range(slots):
            holder = self._claim(f"SLOT#{cluster}#{index}", capture_id, until, now)
            if holder is None:
                return index
            held[f"SLOT#{cluster}#{index}"] = holder
        for index, (pk, holder) in enumerate(held.items()):
            if ended(holder) and self._take_over(pk, holder, capture_id, until):
                return index
        return None

    def release_capture_slot(self, cluster: str, index: int, capture_id: str) -> None:
        """Free the slot if ``capture_id`` still holds it (a capture that started nothing)."""
        self._release(f"SLOT#{cluster}#{index}", capture_id)

    def _take_over(self, pk: str, holder: str, capture_id: str, until: datetime) -> bool:
        """Give the claim item ``pk`` to ``capture_id`` if ``holder`` still has it; whether it did."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_serialize(
                    {
                        "pk": pk,
                        "sk": pk.split("#", 1)[0],
                        "capture_id": capture_id,
                        "ttl": int(until.timestamp()),
                    }
                ),
                ConditionExpression="capture_id = :holder",
                ExpressionAttributeValues=_serialize({":holder": holder}),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            return False
        return True

    # -- files ------------------------------------------------------------------------------------

    def record_file(self, record: FileRecord) -> bool:
        """Store a file item and add it to its session's totals in one transaction; False if already there."""
        first = _iso(record.first_ts) if record.first_ts else "0000"
        item = {
            "pk": f"CAPTURE#{record.capture_id}",
            "sk": f"FILE#{record.node}#{record.s3_key}",
            "gsi1pk": f"CLUSTER#{record.cluster}",
            "gsi1sk": f"FILE#{first}#{record.node}",
            **record.model_dump(mode="json"),
        }
        try:
            self._transact_write(
                [
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _serialize(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": _serialize({"pk": f"CAPTURE#{record.capture_id}", "sk": SESSION_SK}),
                            "UpdateExpression": "ADD totals.files :one, totals.packets :packets, "
                            "totals.#bytes :bytes",
                            "ExpressionAttributeNames": {"#bytes": "bytes"},
                            "ExpressionAttributeValues": _serialize(
                                {":one": 1, ":packets": record.packets, ":bytes": record.bytes}
                            ),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            reasons = _cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return self._record_file_without_session(item)
            raise
        return True

    def _transact_write(self, items: list[Any]) -> None:
        """TransactWriteItems, tried again with jittered exponential backoff while DynamoDB cancels it
        for throttling or a conflicting transaction (else a throttled table loses index items)."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                self._client.transact_write_items(TransactItems=items)
                return
            except ClientError as error:
                if attempt == TRANSACTION_ATTEMPTS or not _is_transient_cancellation(error):
                    raise
            time.sleep(random.uniform(0, TRANSACTION_BACKOFF_SECONDS * 2 ** (attempt - 1)))

    def _record_file_without_session(self, item: dict[str, Any]) -> bool:
        """A file whose session is unknown (an orphan pod's upload) is still indexed, totals aside."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def files_of_capture(self, capture_id: str) -> list[FileRecord]:
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_serialize({":pk": f"CAPTURE#{capture_id}", ":prefix": "FILE#"}),
        )
        return [FileRecord.model_validate(i) for i in items]

    def files_in_window(
        self, cluster: str, start: datetime, end: datetime, node: str | None = None
    ) -> list[FileRecord]:
        """Files of ``cluster`` whose packets overlap [start, end], oldest first (the incident window)."""
        items = self._query_all(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            ExpressionAttributeValues=_serialize(
                {
                    ":pk": f"CLUSTER#{cluster}",
                    ":low": f"FILE#{_iso(start - MAX_FILE_SPAN)}",
                    ":high": f"FILE#{_iso(end)}~",
                }
            ),
        )
        records = [FileRecord.model_validate(i) for i in items]
        return [
            r
            for r in records
            if r.last_ts is not None and r.last_ts >= start and (node is None or r.node == node)
        ]

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, **kwargs):
            items.extend(_deserialize(i) for i in page.get("Items", []))
        return items
