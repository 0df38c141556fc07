"""Read-only lookups of the capture index for the CLI: sessions by cluster and time, files of a capture."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3

from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord
from eks_capture.store.keys import iso_key
from eks_capture.store.sessions import CaptureSession, SessionStatus
from eks_capture_cli.failures import EXIT_NOT_FOUND, CommandError


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
        return self.store.sessions(cluster, since=since, statuses=statuses, limit=limit)

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
    first = iso_key(record.first_ts) if record.first_ts else ""
    return (record.node, first, record.s3_key)
