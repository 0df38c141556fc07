"""File items in the index: one per pcap key in S3, describing its latest version, counted into its
session's totals once.

The indexer may see an object twice (a redelivered event), and a key may be written again (the recorder
puts a longer copy of a file tcpdump still had open under the same key). S3's event sequencer orders the
writes of one key: the file item keeps the sequencer of the version it describes, and is replaced only by
a greater one, conditionally on the sequencer it replaces, in the same transaction as the totals' change,
so neither a retry nor two racing replacements count a file twice or keep an older version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from eks_capture.errors import FileWritesRaced
from eks_capture.store.keys import (
    FILE_PREFIX,
    TRANSACTION_ATTEMPTS,
    Table,
    cancellation_reasons,
    capture_pk,
    cluster_pk,
    deserialize,
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
    etag: str | None = None  # the version analysed (None: indexed before versions were told apart)
    sequencer: str | None = None  # its S3 event's, as ordered_sequencer() spells it; None: unordered


#: What recording a file did: stored it (``indexed``), replaced an older version of it (``replaced``), or
#: nothing, as the stored version is this one (``duplicate``: a retry, or an event without a sequencer for a
#: key indexed already) or a later one (``stale``).
FileWrite = Literal["indexed", "replaced", "duplicate", "stale"]


def _write_order(record: FileRecord, stored: dict[str, Any]) -> FileWrite | None:
    """Whether ``record`` may replace the ``stored`` item of its key: None if it is a later version, else
    what recording it does. A version without a sequencer cannot be ordered: it never replaces, and any
    sequenced one replaces it (the indexer read that one's object as it announced it, IfMatch its ETag)."""
    theirs = stored.get("sequencer")
    if record.sequencer is None:
        return "duplicate"
    if theirs is None or record.sequencer > theirs:
        return None
    return "duplicate" if record.sequencer == theirs else "stale"


class Files(Table):
    """The files part of the store."""

    def record_file(self, record: FileRecord) -> FileWrite:
        """Store a file item and add it to its session's totals in one transaction, or replace an older
        version's item and move the totals by the difference; nothing when the stored version is not older.

        A replacement is conditional on the sequencer it read, so of two racing writers one applies and the
        other reads again and finds its version indexed, older or still later (then it tries again).
        """
        item = {
            **file_keys(record.capture_id, record.cluster, record.node, record.s3_key, record.first_ts),
            **record.model_dump(mode="json"),
        }
        if self._add_file(record, item):
            return "indexed"
        for _ in range(TRANSACTION_ATTEMPTS):
            stored = self._stored_file(item)
            if stored is None:  # removed meanwhile: stored anew
                if self._add_file(record, item):
                    return "indexed"
                continue
            order = _write_order(record, stored)
            if order is not None:
                return order
            if self._replace_file(record, item, stored):
                return "replaced"
        raise FileWritesRaced(record.s3_key, TRANSACTION_ATTEMPTS)

    def _add_file(self, record: FileRecord, item: dict[str, Any]) -> bool:
        """Put a new file item and count it into the totals; False if the key has an item already."""
        counts = {"files": 1, "packets": record.packets, "bytes": record.bytes}
        return self._write_file(record, item, "attribute_not_exists(pk)", {}, counts)

    def _replace_file(self, record: FileRecord, item: dict[str, Any], stored: dict[str, Any]) -> bool:
        """Put ``item`` over the ``stored`` version and move the totals by the difference; False if the
        stored item changed since it was read (another writer's version)."""
        before = stored.get("sequencer")
        condition = "sequencer = :before" if before is not None else "attribute_not_exists(sequencer)"
        values = {":before": before} if before is not None else {}
        counts = {
            "packets": record.packets - int(stored.get("packets", 0)),
            "bytes": record.bytes - int(stored.get("bytes", 0)),
        }
        return self._write_file(record, item, f"attribute_exists(pk) AND {condition}", values, counts)

    def _write_file(
        self,
        record: FileRecord,
        item: dict[str, Any],
        condition: str,
        condition_values: dict[str, Any],
        counts: dict[str, int],
    ) -> bool:
        """The file item's conditional put and the ``counts`` added to its session's totals in one
        transaction; False if the put's condition failed. A session that is unknown (an orphan pod's
        upload) is left out: the file is still indexed, totals aside."""
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": serialize(item),
            "ConditionExpression": condition,
        }
        if condition_values:
            put["ExpressionAttributeValues"] = serialize(condition_values)
        try:
            self._transact_write(
                [
                    {"Put": put},
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": serialize(session_key(record.capture_id)),
                            "UpdateExpression": "ADD " + ", ".join(f"totals.#{n} :{n}" for n in counts),
                            "ExpressionAttributeNames": {f"#{n}": n for n in counts},
                            "ExpressionAttributeValues": serialize({f":{n}": v for n, v in counts.items()}),
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
                return self._conditional("put_item", **{k: v for k, v in put.items() if k != "TableName"})
            raise
        return True

    def _stored_file(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The file item stored at ``item``'s key (read consistently), or None."""
        answer = self._client.get_item(
            TableName=self.table_name,
            Key=serialize({"pk": item["pk"], "sk": item["sk"]}),
            ConsistentRead=True,
        )
        return deserialize(answer["Item"]) if "Item" in answer else None

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
