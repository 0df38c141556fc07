"""Compressing a pcap while it streams to S3, so no compressed copy ever lands in the spool."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO, Protocol

import zstandard


class Codec(StrEnum):
    """How uploaded pcaps are compressed (the value is the CLI spelling)."""

    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"


SUFFIXES = {Codec.ZSTD: ".zst", Codec.GZIP: ".gz", Codec.NONE: ""}
CONTENT_TYPES = {
    Codec.ZSTD: "application/zstd",
    Codec.GZIP: "application/gzip",
    Codec.NONE: "application/vnd.tcpdump.pcap",
}
DEFAULT_LEVELS = {Codec.ZSTD: 1, Codec.GZIP: 6, Codec.NONE: 0}
LEVEL_RANGES = {Codec.ZSTD: range(1, 20), Codec.GZIP: range(1, 10), Codec.NONE: range(0, 1)}
INPUT_CHUNK_BYTES = 1 << 20


class _Chunks(Protocol):
    def read(self, size: int) -> bytes: ...


@dataclass(frozen=True)
class Compression:
    """A codec and its level, validated together."""

    codec: Codec
    level: int

    def __post_init__(self) -> None:
        allowed = LEVEL_RANGES[self.codec]
        if self.level not in allowed:
            bounds = f"{allowed.start}..{allowed.stop - 1}"
            raise ValueError(f"compression level {self.level} is outside {bounds} for {self.codec}")

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.codec]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.codec]

    def reader(self, source: BinaryIO) -> CountingReader:
        """A stream of the compressed bytes of ``source``."""
        chunks: _Chunks
        if self.codec is Codec.ZSTD:
            chunks = zstandard.ZstdCompressor(level=self.level).stream_reader(
                source, read_size=INPUT_CHUNK_BYTES
            )
        elif self.codec is Codec.GZIP:
            chunks = _GzipChunks(source, self.level)
        else:
            chunks = source
        return CountingReader(chunks)


class _GzipChunks:
    """gzip framing (wbits 31) produced on demand from a raw stream."""

    def __init__(self, source: BinaryIO, level: int) -> None:
        self._source = source
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._done = False

    def read(self, size: int) -> bytes:
        while not self._done:
            data = self._source.read(INPUT_CHUNK_BYTES)
            if data:
                produced = self._compressor.compress(data)
            else:
                produced = self._compressor.flush()
                self._done = True
            if produced:
                return produced
        return b""


class CountingReader:
    """Returns exactly the bytes asked for until the end (S3 multipart parts must be full) and counts them."""

    def __init__(self, chunks: _Chunks) -> None:
        self._chunks = chunks
        self._pending = b""
        self._ended = False
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        while not self._ended and (size < 0 or have < size):
            data = self._chunks.read(INPUT_CHUNK_BYTES)
            if not data:
                self._ended = True
                break
            parts.append(data)
            have += len(data)
        if 0 <= size < have:
            extra = have - size
            parts[-1], self._pending = parts[-1][:-extra], parts[-1][-extra:]
        out = b"".join(parts)
        self.bytes_read += len(out)
        return out
