"""Transparent decompression of capture streams: gzip, zstd or plain, told apart by their magic bytes."""

from __future__ import annotations

import gzip
import zlib
from typing import IO, BinaryIO, Protocol, cast

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: What a broken compressed stream raises while it is being read (all are turned into a partial result).
#: I/O errors of the source itself are deliberately absent: they propagate, so a caller can retry.
DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    gzip.BadGzipFile,
    zlib.error,
    zstandard.ZstdError,
)


class Readable(Protocol):
    """Anything with ``read(n)`` returning bytes: a file, an S3 ``StreamingBody``, a decompressor."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Prefixed:
    """A stream that replays the bytes already taken to sniff the magic before reading on."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def read_at_least(stream: Readable, size: int) -> bytes:
    """Read until ``size`` bytes or the end: network bodies and decompressors may return short reads."""
    data = stream.read(size)
    if len(data) >= size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def compression_of(head: bytes) -> str:
    """The compression a stream starting with ``head`` uses: ``gzip``, ``zstd`` or ``none``."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressed(source: Readable | BinaryIO) -> tuple[Readable, str]:
    """Wrap ``source`` so reads return capture bytes, whatever the compression; also say which it was."""
    head = read_at_least(source, 4)
    kind = compression_of(head)
    raw = cast(IO[bytes], _Prefixed(head, source))
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), kind
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, read_size=1 << 20)
        return reader, kind
    return raw, kind
