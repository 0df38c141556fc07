"""Streaming compression: what S3 receives decompresses to the file, in full-size reads."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from eks_capture_agent.compression import Codec, Compression

DATA = os.urandom(300_000) + bytes(3_000_000) + b"pcap" * 100_000


def _decompress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.ZSTD:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if codec is Codec.GZIP:
        return gzip.decompress(data)
    return data


@pytest.mark.parametrize(
    ("codec", "level"), [(Codec.ZSTD, 1), (Codec.ZSTD, 3), (Codec.GZIP, 1), (Codec.GZIP, 6), (Codec.NONE, 0)]
)
def test_the_stream_decompresses_to_the_original_bytes(codec: Codec, level: int) -> None:
    reader = Compression(codec, level).reader(io.BytesIO(DATA))
    parts = []
    while part := reader.read(256 * 1024):
        parts.append(part)
    assert _decompress(codec, b"".join(parts)) == DATA
    assert reader.bytes_read == sum(len(part) for part in parts)
    assert all(len(part) == 256 * 1024 for part in parts[:-1]), "multipart parts must be full"


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.GZIP])
def test_compressible_pcaps_shrink(codec: Codec) -> None:
    reader = Compression(codec, 1).reader(io.BytesIO(bytes(1_000_000)))
    assert len(reader.read()) < 10_000


@pytest.mark.parametrize(
    ("codec", "level"), [(Codec.ZSTD, 0), (Codec.ZSTD, 20), (Codec.GZIP, 10), (Codec.NONE, 3)]
)
def test_levels_outside_the_codecs_range_are_refused(codec: Codec, level: int) -> None:
    with pytest.raises(ValueError, match=f"level {level}"):
        Compression(codec, level)


@pytest.mark.parametrize(("codec", "suffix"), [(Codec.ZSTD, ".zst"), (Codec.GZIP, ".gz"), (Codec.NONE, "")])
def test_each_codec_names_its_objects(codec: Codec, suffix: str) -> None:
    assert Compression(codec, 1 if codec is not Codec.NONE else 0).suffix == suffix
