"""The one S3 seam: a client from the standard chain and a confirmed, compressed upload of one file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_capture_agent.compression import Compression

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = [
    "FoundObject",
    "S3Client",
    "StoredObject",
    "UploadNotConfirmedError",
    "find_object",
    "put_bytes",
    "put_file",
    "s3_client",
]

PART_BYTES = 8 * 1024 * 1024
IN_MEMORY_PARTS = 3
TRANSFER = TransferConfig(
    multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=2, use_threads=True
)
# A compressed stream is not seekable, so s3transfer holds its parts in memory: cap them (default 10).
TRANSFER.max_in_memory_upload_chunks = IN_MEMORY_PARTS


class UploadNotConfirmedError(RuntimeError):
    """S3 accepted the upload but does not hold the object we sent."""


def s3_client() -> S3Client:
    """Region, endpoint (``AWS_ENDPOINT_URL``) and credentials from the standard chain; short timeouts
    so an outage costs seconds per attempt and the agent's own retry loop stays in charge."""
    config = Config(
        connect_timeout=3,
        read_timeout=20,
        retries={"max_attempts": 2, "mode": "standard"},
        user_agent_extra="eks-capture-agent",
    )
    return boto3.session.Session().client("s3", config=config)


@dataclass(frozen=True)
class StoredObject:
    """An upload S3 has confirmed."""

    key: str
    stored_bytes: int


def put_file(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    compression: Compression,
    metadata: Mapping[str, str],
) -> StoredObject:
    """Stream ``path`` compressed to S3, then confirm the object's size with a HEAD."""
    with path.open("rb") as source:
        reader = compression.reader(source)
        client.upload_fileobj(
            reader,  # type: ignore[arg-type]  # any object with read() will do
            bucket,
            key,
            ExtraArgs={"Metadata": dict(metadata), "ContentType": compression.content_type},
            Config=TRANSFER,
        )
    return _confirmed(client, bucket, key, reader.bytes_read)


def put_bytes(client: S3Client, bucket: str, key: str, body: bytes, content_type: str) -> StoredObject:
    """Write a small document (snapshots, manifest) in one PUT and confirm it."""
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return _confirmed(client, bucket, key, len(body))


@dataclass(frozen=True)
class FoundObject:
    """An object S3 holds: its user metadata and its size."""

    metadata: dict[str, str]
    stored_bytes: int


def find_object(client: S3Client, bucket: str, key: str) -> FoundObject | None:
    """What S3 holds at ``key`` (one HEAD), None when it holds nothing there; any other error is raised."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return FoundObject(dict(head["Metadata"]), head["ContentLength"])


def _confirmed(client: S3Client, bucket: str, key: str, sent_bytes: int) -> StoredObject:
    head = client.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != sent_bytes:
        raise UploadNotConfirmedError(
            f"s3://{bucket}/{key} holds {head['ContentLength']} bytes, {sent_bytes} were sent"
        )
    return StoredObject(key=key, stored_bytes=sent_bytes)
