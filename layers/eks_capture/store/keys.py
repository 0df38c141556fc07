"""The capture index table's layout, defined once: its keys, its indexes, and its attribute encoding.

One DynamoDB table holds sessions, file items, node locks, alarm cooldowns and capture slots (the layout
and its query patterns are in docs/design.md). Every module that reads or writes the table builds its keys
and encodes its items here.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_capture.settings import MAX_API_PARALLELISM
from eks_capture.times import iso_utc

SESSION_SK = "SESSION"
#: The sort keys of a cluster's sessions on gsi1 lie between these (an ISO time follows the prefix).
SESSIONS_LOW, SESSIONS_HIGH = "SESSION#", "SESSION#~"
FILE_PREFIX = "FILE#"
MAX_FILE_SPAN = timedelta(hours=1)  # the longest a file may cover; bounds the window query (docs/design.md)

# Why DynamoDB cancels a transaction that may pass if tried again; botocore retries none of them, as
# they come as TransactionCanceledException (throttled single-item calls it retries itself).
_TRANSIENT_CANCELLATIONS = {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"}
TRANSACTION_ATTEMPTS = 8
# Refusals of a whole call that pass if asked again later (botocore retries each itself first).
_TRANSIENT_ERRORS = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}
# Throttled single-item calls: botocore's standard mode (jittered backoff from 1 s) with 8 attempts, not its 4
# for DynamoDB, so a burst that throttles 30 % of writes fails ~1 in 15,000 calls instead of ~1 in 120 and
# seldom leaves a capture to Lambda's retry a minute later.
#: Standard retries; a connection pool as large as the fan-out (botocore's default keeps 10 connections,
#: so 16-32 threads claiming nodes at once opened and discarded a connection per call beyond the tenth).
DYNAMODB_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=MAX_API_PARALLELISM
)
#: Production's backoff: the first retry waits up to this (STORE_RETRY_BACKOFF_MS, settings.py), each next
#: one up to twice as long.
TRANSACTION_BACKOFF_SECONDS = 0.05
BATCH_GET_KEYS = 100  # the most keys one BatchGetItem call takes

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def iso_key(moment: datetime) -> str:
    """A time as the table's sort keys spell it (UTC, microseconds, so keys sort as times do)."""
    return iso_utc(moment, micros=True)


# -- the table layout (docs/design.md): every key of every item, built here and nowhere else ------------


def capture_pk(capture_id: str) -> str:
    """The partition of one capture: its session item and its file items."""
    return f"CAPTURE#{capture_id}"


def session_key(capture_id: str) -> dict[str, str]:
    """The key of a capture's session item."""
    return {"pk": capture_pk(capture_id), "sk": SESSION_SK}


def cluster_pk(cluster: str) -> str:
    """gsi1's partition of one cluster: its sessions and files by time."""
    return f"CLUSTER#{cluster}"


def session_index_keys(session_cluster: str, created_at: datetime, alarm_name: str | None) -> dict[str, str]:
    """A session's gsi1 keys (the cluster's sessions by start time) and, for an alarm's, gsi2 keys."""
    keys = {"gsi1pk": cluster_pk(session_cluster), "gsi1sk": f"{SESSIONS_LOW}{iso_key(created_at)}"}
    if alarm_name:
        keys |= {"gsi2pk": alarm_pk(alarm_name), "gsi2sk": iso_key(created_at)}
    return keys


def file_keys(
    capture_id: str, cluster: str, node: str, s3_key: str, first_ts: datetime | None
) -> dict[str, str]:
    """A file item's key and its gsi1 keys (the cluster's files by first packet time, then node)."""
    first = iso_key(first_ts) if first_ts else "0000"
    return {
        "pk": capture_pk(capture_id),
        "sk": f"{FILE_PREFIX}{node}#{s3_key}",
        "gsi1pk": cluster_pk(cluster),
        "gsi1sk": f"{FILE_PREFIX}{first}#{node}",
    }


def file_window_bounds(start: datetime, end: datetime) -> tuple[str, str]:
    """gsi1 sort keys of the files that may hold packets in [start, end] (a file spans MAX_FILE_SPAN)."""
    return f"{FILE_PREFIX}{iso_key(start - MAX_FILE_SPAN)}", f"{FILE_PREFIX}{iso_key(end)}~"


def alarm_pk(alarm_name: str) -> str:
    """gsi2's partition of one alarm: the captures it started."""
    return f"ALARM#{alarm_name}"


def claim_key(kind: Literal["LOCK", "COOLDOWN", "SLOT"], *parts: str | int) -> dict[str, str]:
    """A claim item's key: a node lock (cluster, node), an alarm cooldown (alarm), a slot (cluster, index)."""
    return {"pk": "#".join([kind, *map(str, parts)]), "sk": kind}


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


def serialize_value(value: Any) -> Any:
    """One attribute value in DynamoDB's typed form (None as NULL)."""
    return _serializer.serialize(_to_dynamo(value))


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's typed form; None attributes are left out."""
    return {k: serialize_value(v) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def cancellation_reasons(error: ClientError) -> list[str | None]:
    return [r.get("Code") for r in error.response.get("CancellationReasons", [])]


def _is_transient_cancellation(error: ClientError) -> bool:
    """A transaction cancelled for capacity or a concurrent transaction only, not for its conditions."""
    reasons = set(_refused_for(error))
    return bool(reasons) and reasons <= _TRANSIENT_CANCELLATIONS


def _refused_for(error: ClientError) -> list[str]:
    """A cancelled transaction's reasons, those of its items that passed left out (none for other errors)."""
    return sorted({str(r) for r in cancellation_reasons(error)} - {"None"})


def refusal_code(error: ClientError) -> str:
    """Why DynamoDB refused a write, as its code: a cancelled transaction's reasons (``ThrottlingError``:
    what tells throttled from denied, where the transaction's own code says neither), else the error's code.
    Each node of a refused batch carries it, so it is short enough to be kept whole in a session of the
    most nodes (64 bytes a node: store/sizes.py)."""
    return ", ".join(_refused_for(error)) or error.response.get("Error", {}).get("Code", "an unknown error")


def refusal_in_words(error: ClientError) -> str:
    """A write DynamoDB refused past its retries, said once: its error code with a cancelled transaction's
    reasons, how many attempts were made, and DynamoDB's own message (a cancelled transaction's: its first
    reason's)."""
    answer = error.response
    code = answer.get("Error", {}).get("Code", "an unknown error")
    reasons = _refused_for(error)
    if reasons:
        code += f" ({', '.join(reasons)})"
    if _is_transient_cancellation(error):  # _transact_write's own attempts, all cancelled alike
        attempts = TRANSACTION_ATTEMPTS
    else:  # botocore's: the first try and its retries
        attempts = int(answer.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
    said = [str(r["Message"]) for r in answer.get("CancellationReasons", []) if r.get("Message")]
    message = said[0] if said else answer.get("Error", {}).get("Message", "")
    return f"{code} after {attempts} attempt{'s' if attempts > 1 else ''}: {message}".rstrip(": ")


def is_transient(error: ClientError) -> bool:
    """A refusal that may pass on a later try: throttling, a conflicting transaction, DynamoDB's own fault."""
    return (
        _is_transient_cancellation(error) or error.response.get("Error", {}).get("Code") in _TRANSIENT_ERRORS
    )


def is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    }


def worst_transaction_wait_seconds(backoff: float = TRANSACTION_BACKOFF_SECONDS) -> float:
    """The longest the store sleeps between the attempts of one transaction (or batch read) before it gives
    up: every jittered wait at its bound. The functions' timeouts must leave room for it."""
    return backoff * float(2 ** (TRANSACTION_ATTEMPTS - 1) - 1)


def _back_off(attempt: int, backoff: float) -> None:
    """Wait before asking DynamoDB again: up to ``backoff`` seconds, twice as long each attempt (jittered,
    so the threads a throttle refused together do not ask again together)."""
    time.sleep(random.uniform(0, backoff * 2 ** (attempt - 1)))


class Table:
    """The capture index table and its client: what every part of the store shares; a refused transaction
    is tried again after ``backoff`` seconds, doubling (none given: production's)."""

    def __init__(
        self, table_name: str, client: Any = None, backoff: float = TRANSACTION_BACKOFF_SECONDS
    ) -> None:
        self.table_name = table_name
        self._client = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)
        self._backoff = backoff

    def _conditional(self, operation: Literal["put_item", "update_item", "delete_item"], **call: Any) -> bool:
        """One conditional write; False when its condition fails (the item moved on, or is already there).

        Retries and redeliveries meet the same condition, so a False is an answer, not an error.
        """
        try:
            getattr(self._client, operation)(TableName=self.table_name, **call)
        except ClientError as error:
            if is_condition_failure(error):
                return False
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
            _back_off(attempt, self._backoff)

    def _batch_get(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """The items at ``keys`` (absent ones left out), read consistently, 100 keys a BatchGetItem call.

        Keys DynamoDB leaves unprocessed (a table over its capacity) are asked again after a jittered,
        doubling wait, as its documentation asks; any still unprocessed after TRANSACTION_ATTEMPTS calls are
        read one at a time, with botocore's own retries, so a throttled table fails as a single read fails.
        """
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending = [serialize(key) for key in keys[start : start + BATCH_GET_KEYS]]
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                response = self._client.batch_get_item(
                    RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}}
                )
                read: dict[str, Any] = response.get("Responses", {})
                left: dict[str, Any] = response.get("UnprocessedKeys", {})
                items.extend(deserialize(i) for i in read.get(self.table_name, []))
                pending = list(left.get(self.table_name, {}).get("Keys", []))
                if not pending:
                    break
                if attempt < TRANSACTION_ATTEMPTS:
                    _back_off(attempt, self._backoff)
            for key in pending:
                answer = self._client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
                if "Item" in answer:
                    items.append(deserialize(answer["Item"]))
        return items

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, **kwargs):
            items.extend(deserialize(i) for i in page.get("Items", []))
        return items
