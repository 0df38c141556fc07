"""The once-only mark of a capture's end notification, on its session item.

The reaper and the report function may both try to notify the end of one capture; the conditional mark
lets exactly one of them say it was first.
"""

from __future__ import annotations

from datetime import datetime

from eks_capture.store.keys import Table, serialize, session_key
from eks_capture.times import iso_utc


class Notices(Table):
    """The end-notification part of the store."""

    def end_notice_sent(self, capture_id: str) -> bool:
        """Whether the capture's end notification has gone out."""
        item = self._client.get_item(
            TableName=self.table_name,
            Key=serialize(session_key(capture_id)),
            ProjectionExpression="notified_at",
            ConsistentRead=True,
        ).get("Item", {})
        return "notified_at" in item

    def record_end_notice(self, capture_id: str, at: datetime, report_key: str) -> bool:
        """Mark the notification sent (and the report it linked); False when another sender was first."""
        return self._conditional(
            "update_item",
            Key=serialize(session_key(capture_id)),
            UpdateExpression="SET notified_at = :at, report_key = :key",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(notified_at)",
            ExpressionAttributeValues=serialize({":at": iso_utc(at), ":key": report_key}),
        )
