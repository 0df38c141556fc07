"""Links an operator follows from a report or the terminal: the S3 console page of a capture's prefix."""

from __future__ import annotations

import boto3


def s3_console_link(bucket: str, prefix: str, region: str | None = None) -> str:
    """The S3 console page listing ``prefix`` of ``bucket``."""
    where = region or boto3.session.Session().region_name or "us-east-1"
    return f"https://{where}.console.aws.amazon.com/s3/buckets/{bucket}?region={where}&prefix={prefix}"
