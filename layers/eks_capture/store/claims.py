"""Claims in the index: node locks, alarm cooldowns and capture slots, each one conditional item.

A claim is free when nobody holds it, when this capture holds it (a retried invocation), or once expired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from eks_capture.store.keys import (
    Table,
    cancellation_reasons,
    claim_key,
    deserialize,
    serialize,
    session_key,
)

_CLAIM_CONDITION = "attribute_not_exists(pk) OR capture_id = :id OR #ttl < :now"
CLAIMS_PER_TRANSACTION = 100  # DynamoDB's most items in one TransactWriteItems


class Claims(Table):
    """The claims part of the store."""

    @staticmethod
    def _claim_item(key: dict[str, str], capture_id: str, until: datetime) -> dict[str, object]:
        return serialize({**key, "capture_id": capture_id, "ttl": int(until.timestamp())})

    def _claim(self, key: dict[str, str], capture_id: str, until: datetime, now: datetime) -> str | None:
        """Take the claim item ``key`` for ``capture_id`` until ``until``; None, or the capture holding it."""
        if self._conditional(
            "put_item",
            Item=self._claim_item(key, capture_id, until),
            ConditionExpression=_CLAIM_CONDITION,
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=serialize({":id": capture_id, ":now": int(now.timestamp())}),
        ):
            return None
        return self._holder(key)

    def _holder(self, key: dict[str, str], item: Mapping[str, Any] | None = None) -> str:
        """The capture holding the claim item ``key`` (``item``: as DynamoDB returned it with a refusal)."""
        if item is None:
            item = self._client.get_item(
                TableName=self.table_name, Key=serialize(key), ConsistentRead=True
            ).get("Item")
        return str(deserialize(dict(item))["capture_id"]) if item else "another capture"

    def _claim_all(
        self, keys: list[dict[str, str]], capture_id: str, until: datetime, now: datetime
    ) -> dict[int, str]:
        """Take the claim items ``keys`` (at most ``CLAIMS_PER_TRANSACTION``) in one transaction; the
        index of each one another capture holds, with its holder (the others are taken).

        A transaction is cancelled whole when one condition fails: the refused items are left out and the
        rest tried again (a cancellation for throttling or a conflicting transaction only is tried again
        by ``_transact_write``), so each item ends taken or held by someone else, as one put each would.
        """
        values = serialize({":id": capture_id, ":now": int(now.timestamp())})
        puts = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._claim_item(key, capture_id, until),
                    "ConditionExpression": _CLAIM_CONDITION,
                    "ExpressionAttributeNames": {"#ttl": "ttl"},
                    "ExpressionAttributeValues": values,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for key in keys
        ]
        held: dict[int, str] = {}
        pending = list(range(len(keys)))
        while pending:
            try:
                self._transact_write([puts[index] for index in pending])
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                refused = {
                    index: reason
                    for index, reason in zip(pending, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
                if not refused:
                    raise
                held |= {
                    index: self._holder(keys[index], reason.get("Item")) for index, reason in refused.items()
                }
                pending = [index for index in pending if index not in refused]
            else:
                return held
        return held

    def _release(self, key: dict[str, str], capture_id: str) -> None:
        """Drop the claim item ``key`` if ``capture_id`` still holds it (never another capture's)."""
        self._conditional(
            "delete_item",
            Key=serialize(key),
            ConditionExpression="capture_id = :id",
            ExpressionAttributeValues=serialize({":id": capture_id}),
        )

    def _take_over(self, key: dict[str, str], holder: str, capture_id: str, until: datetime) -> bool:
        """Give the claim item ``key`` to ``capture_id`` if ``holder`` still has it; whether it did."""
        return self._conditional(
            "put_item",
            Item=self._claim_item(key, capture_id, until),
            ConditionExpression="capture_id = :holder",
            ExpressionAttributeValues=serialize({":holder": holder}),
        )

    def acquire_nodes(
        self, cluster: str, nodes: Sequence[str], capture_id: str, until: datetime, now: datetime
    ) -> dict[str, str]:
        """Claim each of ``nodes`` (at most ``CLAIMS_PER_TRANSACTION``) for ``capture_id`` until ``until``;
        the nodes another capture holds, each with the capture holding it (the others are claimed).

        A lock held by the same capture is re-acquired (a retried invocation), an expired one is taken over.
        One transaction for up to 100 nodes rather than one conditional put each: at 500 nodes the
        trigger's CPU for its locks fell from 0.61 s to 0.05 s, and the local DynamoDB's from 1.07 s to
        0.29 s (a transaction's writes cost twice the capacity of single puts: 1,000 WCU for 500 nodes).
        """
        held = self._claim_all([claim_key("LOCK", cluster, node) for node in nodes], capture_id, until, now)
        return {nodes[index]: holder for index, holder in held.items()}

    def release_node(self, cluster: str, node: str, capture_id: str) -> None:
        """Free ``node`` if ``capture_id`` still holds it (never another capture's lock)."""
        self._release(claim_key("LOCK", cluster, node), capture_id)

    def claim_cooldown(self, alarm_name: str, capture_id: str, until: datetime, now: datetime) -> str | None:
        """Start the alarm's cooldown for ``capture_id``; None on success, else the capture in cooldown."""
        return self._claim(claim_key("COOLDOWN", alarm_name), capture_id, until, now)

    def release_cooldown(self, alarm_name: str, capture_id: str) -> None:
        """End the alarm's cooldown if ``capture_id`` holds it (a capture that started nothing)."""
        self._release(claim_key("COOLDOWN", alarm_name), capture_id)

    def release_unused_cooldown(self, alarm_name: str, capture_id: str) -> None:
        """End the alarm's cooldown if ``capture_id`` holds it and has no session (a delivery that failed
        before storing anything), in one transaction: a duplicate delivery of the same event that stored
        its session meanwhile keeps the cooldown it shares."""
        delete = {
            "TableName": self.table_name,
            "Key": serialize(claim_key("COOLDOWN", alarm_name)),
            "ConditionExpression": "capture_id = :id",
            "ExpressionAttributeValues": serialize({":id": capture_id}),
        }
        unstored = {
            "TableName": self.table_name,
            "Key": serialize(session_key(capture_id)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            self._transact_write([{"Delete": delete}, {"ConditionCheck": unstored}])
        except ClientError as error:
            if "ConditionalCheckFailed" not in cancellation_reasons(error):
                raise

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
        held: dict[int, str] = {}
        for index in range(slots):
            holder = self._claim(claim_key("SLOT", cluster, index), capture_id, until, now)
            if holder is None:
                return index
            held[index] = holder
        for index, holder in held.items():
            if ended(holder) and self._take_over(
                claim_key("SLOT", cluster, index), holder, capture_id, until
            ):
                return index
        return None

    def release_capture_slot(self, cluster: str, index: int, capture_id: str) -> None:
        """Free the slot if ``capture_id`` still holds it (a capture that started nothing)."""
        self._release(claim_key("SLOT", cluster, index), capture_id)
