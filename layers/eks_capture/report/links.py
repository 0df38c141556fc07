"""Links an operator follows from a report or the terminal: the S3 console page of a capture's prefix."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

#: Seconds a presigned report link stays valid unless the operator asks otherwise (docs/security.md).
DEFAULT_EXPIRY = 3600


def signing_s3_client() -> Any:
    """S3 presigning with SigV4, whose links carry their expiry (botocore's default SigV2 links do not)."""
    return boto3.client("s3", config=Config(signature_version="s3v4"))


def s3_console_link(bucket: str, prefix: str, region: str | None = None) -> str:
    """The S3 console page listing ``prefix`` of ``bucket``."""
    where = region or boto3.session.Session().region_name or "us-east-1"
    return f"https://{where}.console.aws.amazon.com/s3/buckets/{bucket}?region={where}&prefix={prefix}"
