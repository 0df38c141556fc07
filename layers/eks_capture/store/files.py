"""File items in the index: one per pcap object in S3, counted into its session's totals once.

The indexer may see an object twice; the file item's conditional put and the totals' update share one
transaction, so a retry never double-counts a file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from eks_capture.store.keys import (
    FILE_PREFIX,
    Table,
    cancellation_reasons,
    capture_pk,
    cluster_pk,
    file_keys,
    file_window_bounds,
    is_condition_failure,
    serialize,
    session_key,
)


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


class Files(Table):
    """The files part of the store."""

    def record_file(self, record: FileRecord) -> bool:
        """Store a file item and add it to its session's totals in one transaction; False if already there."""
        item = {
            **file_keys(record.capture_id, record.cluster, record.node, record.s3_key, record.first_ts),
            **record.model_dump(mode="json"),
        }
        try:
            self._transact_write(
                [
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": serialize(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": serialize(session_key(record.capture_id)),
                            "UpdateExpression": "ADD totals.files :one, totals.packets :packets, "
                            "totals.#bytes :bytes",
                            "ExpressionAttributeNames": {"#bytes": "bytes"},
                            "ExpressionAttributeValues": serialize(
                                {":one": 1, ":packets": record.packets, ":bytes": record.bytes}
                            ),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            reasons = cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                # A file whose session is unknown (an orphan pod's upload) is still indexed, totals aside.
                return self._conditional(
                    "put_item", Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
                )
            raise
        return True

    def files_of_capture(self, capture_id: str) -> list[FileRecord]:
        """The capture's file items, in key order (node, then S3 key)."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": capture_pk(capture_id), ":prefix": FILE_PREFIX}),
        )
        return [FileRecord.model_validate(i) for i in items]

    def files_in_window(
        self, cluster: str, start: datetime, end: datetime, node: str | None = None
    ) -> list[FileRecord]:
        """Files of ``cluster`` whose packets overlap [start, end], oldest first (the incident window)."""
        low, high = file_window_bounds(start, end)
        items = self._query_all(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            ExpressionAttributeValues=serialize({":pk": cluster_pk(cluster), ":low": low, ":high": high}),
        )
        records = [FileRecord.model_validate(i) for i in items]
        return [
            r
            for r in records
            if r.last_ts is not None and r.last_ts >= start and (node is None or r.node == node)
        ]
