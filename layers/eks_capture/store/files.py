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
    MAX_FILE_SPAN,
    SESSION_SK,
    Table,
    cancellation_reasons,
    is_condition_failure,
    iso_key,
    serialize,
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
        first = iso_key(record.first_ts) if record.first_ts else "0000"
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
                            "Item": serialize(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": serialize({"pk": f"CAPTURE#{record.capture_id}", "sk": SESSION_SK}),
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
                return self._record_file_without_session(item)
            raise
        return True

    def _record_file_without_session(self, item: dict[str, Any]) -> bool:
        """A file whose session is unknown (an orphan pod's upload) is still indexed, totals aside."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def files_of_capture(self, capture_id: str) -> list[FileRecord]:
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": f"CAPTURE#{capture_id}", ":prefix": "FILE#"}),
        )
        return [FileRecord.model_validate(i) for i in items]

    def files_in_window(
        self, cluster: str, start: datetime, end: datetime, node: str | None = None
    ) -> list[FileRecord]:
        """Files of ``cluster`` whose packets overlap [start, end], oldest first (the incident window)."""
        items = self._query_all(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            ExpressionAttributeValues=serialize(
                {
                    ":pk": f"CLUSTER#{cluster}",
                    ":low": f"FILE#{iso_key(start - MAX_FILE_SPAN)}",
                    ":high": f"FILE#{iso_key(end)}~",
                }
            ),
        )
        records = [FileRecord.model_validate(i) for i in items]
        return [
            r
            for r in records
            if r.last_ts is not None and r.last_ts >= start and (node is None or r.node == node)
        ]
