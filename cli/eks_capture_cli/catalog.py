"""Read-only lookups of the capture index for the CLI: sessions by cluster and time, files of a capture."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession, SessionStatus
from eks_capture_cli.failures import EXIT_NOT_FOUND, CommandError

_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Catalog:
    """The capture index as an operator browses it (the table layout of docs/design.md)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")
        self.store = CaptureStore(table_name, self.client)

    def sessions(
        self,
        cluster: str,
        *,
        since: datetime | None = None,
        statuses: tuple[SessionStatus, ...] = (),
        limit: int = 50,
    ) -> list[CaptureSession]:
        """The cluster's captures started at or after ``since``, newest first, at most ``limit``."""
        low = f"SESSION#{_stamp(since)}" if since else "SESSION#"
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"CLUSTER#{cluster}"},
                ":low": {"S": low},
                ":high": {"S": "SESSION#~"},
            },
            "ScanIndexForward": False,
        }
        if statuses:
            names = {f":s{i}": {"S": status} for i, status in enumerate(statuses)}
            query["FilterExpression"] = f"#status IN ({', '.join(names)})"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"].update(names)
        found: list[CaptureSession] = []
        for page in self.client.get_paginator("query").paginate(**query):
            for item in page.get("Items", []):
                data = _plain({k: _deserializer.deserialize(v) for k, v in item.items()})
                found.append(CaptureSession.model_validate(data))
                if len(found) >= limit:
                    return found
        return found

    def session(self, capture_id: str) -> CaptureSession:
        """One capture's session; a not-found failure naming the table otherwise."""
        session = self.store.get_session(capture_id)
        if session is None:
            raise CommandError(f"capture {capture_id} not found in table {self.table_name}", EXIT_NOT_FOUND)
        return session

    def files(self, capture_id: str) -> list[FileRecord]:
        """The capture's files, by node then time."""
        return sorted(self.store.files_of_capture(capture_id), key=_file_order)

    def window(self, cluster: str, start: datetime, end: datetime, node: str | None) -> list[FileRecord]:
        """The cluster's files with packets in [start, end], across captures and nodes."""
        return sorted(self.store.files_in_window(cluster, start, end, node), key=_file_order)


def _file_order(record: FileRecord) -> tuple[str, str, str]:
    first = _stamp(record.first_ts) if record.first_ts else ""
    return (record.node, first, record.s3_key)
