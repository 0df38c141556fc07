"""Parallel, resumable, decompressing downloads of indexed capture files.

A file is written as ``<name>.part`` and renamed when whole, so a file under its final name is complete
and a second run skips it; an interrupted one starts that file again. Objects are fetched by the keys
the index holds (no S3 listing): compressed ones streamed and decompressed on the way to disk with the
reader's own sniffing, plain ones by boto3's transfer manager (parallel ranged GETs), as fast as boto3.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_capture.pcap.compression import decompressed
from eks_capture.store.files import FileRecord
from eks_capture_cli.failures import EXIT_NOT_FOUND, CommandError

COMPRESSED_SUFFIXES = (".zst", ".gz")
COPY_CHUNK = 1 << 20
RANGES_PER_FILE = 10
TRANSFER = TransferConfig(max_concurrency=RANGES_PER_FILE)


def local_name(record: FileRecord) -> Path:
    """Where a file lands below the output directory: ``<capture>/<node>/<name without .zst/.gz>``."""
    name = record.s3_key.rsplit("/", 1)[-1]
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return Path(record.capture_id) / record.node / name


@dataclass
class Fetched:
    """One file's outcome: where it is and whether this run downloaded it."""

    record: FileRecord
    path: Path
    downloaded: bool


class _Counting:
    """A body wrapper that reports every compressed byte read (for the progress bar)."""

    def __init__(self, body: Any, advance: Callable[[int], None]) -> None:
        self._body = body
        self._advance = advance

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._body.read(size)
        self._advance(len(data))
        return data


def s3_client(workers: int) -> Any:
    """An S3 client whose connection pool fits ``workers`` parallel downloads."""
    return boto3.client("s3", config=Config(max_pool_connections=max(10, workers * RANGES_PER_FILE)))


def fetch_one(
    client: Any, bucket: str, record: FileRecord, root: Path, advance: Callable[[int], None]
) -> Fetched:
    """Download and decompress one file unless it is there already."""
    target = root / local_name(record)
    if target.exists():
        advance(record.size)
        return Fetched(record, target, downloaded=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        if record.s3_key.endswith(COMPRESSED_SUFFIXES):
            _stream_decompressed(client, bucket, record.s3_key, partial, advance)
        else:
            client.download_file(bucket, record.s3_key, str(partial), Callback=advance, Config=TRANSFER)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise CommandError(
                f"s3://{bucket}/{record.s3_key} is indexed but not in the bucket", EXIT_NOT_FOUND
            ) from None
        raise
    partial.replace(target)
    return Fetched(record, target, downloaded=True)


def _stream_decompressed(
    client: Any, bucket: str, key: str, partial: Path, advance: Callable[[int], None]
) -> None:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        stream, _kind = decompressed(_Counting(body, advance))
        with partial.open("wb") as out:
            shutil.copyfileobj(stream, out, COPY_CHUNK)
    finally:
        body.close()


def fetch_all(
    bucket: str,
    records: Sequence[FileRecord],
    root: Path,
    *,
    workers: int = 8,
    advance: Callable[[int], None] = lambda _n: None,
    done: Callable[[Fetched], None] = lambda _f: None,
    client: Any = None,
) -> list[Fetched]:
    """Fetch ``records`` into ``root`` with ``workers`` threads; results in the order of ``records``."""
    s3 = client or s3_client(workers)
    results: dict[int, Fetched] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        futures = {
            pool.submit(fetch_one, s3, bucket, record, root, advance): index
            for index, record in enumerate(records)
        }
        for future in as_completed(futures):
            fetched = future.result()
            results[futures[future]] = fetched
            done(fetched)
    return [results[i] for i in range(len(records))]
