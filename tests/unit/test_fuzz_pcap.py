"""The whole analyzer (reader, decoders, findings) on real captures mutated anywhere: never an error or a
hang, a partial result always says why, and time grows with the bytes, not with what they claim.

tests/unit/test_pcap_reader.py already cuts these files at every byte and feeds the reader random
bytes after a valid header; this adds overwritten bytes, forged length fields and compression around
the mutated file, through ``analyze`` as the indexer calls it.
"""

from __future__ import annotations

import gzip
import io
import struct
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eks_capture.pcap import CaptureReader, analyze

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"
NAMES = ("any-nano-head.pcap", "server-head.pcapng")
COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": bytes,
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
# Length-like values a forged header may carry: zero, tiny, around the file size, near 2**32.
FORGED = (0, 1, 3, 15, 16, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def original(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


@cache
def clean_seconds_per_byte() -> float:
    """How fast this machine analyses the unmodified files (the yardstick of the time bound)."""
    data = b"".join(original(name) for name in NAMES)
    started = time.perf_counter()
    for name in NAMES:
        analyze(io.BytesIO(original(name)))
    return (time.perf_counter() - started) / len(data)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real capture with overwritten bytes, forged 32-bit words and maybe a cut, then compressed."""
    name = draw(st.sampled_from(NAMES))
    data = bytearray(original(name))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 4))
        order = draw(st.sampled_from("<>"))
        struct.pack_into(f"{order}I", data, at, draw(st.sampled_from(FORGED)))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    compression = draw(st.sampled_from(sorted(COMPRESSIONS)))
    return compression, COMPRESSIONS[compression](bytes(data))


@FUZZ
@given(case=mutated())
def test_a_mutated_capture_is_analysed_without_error_and_a_partial_result_says_why(
    case: tuple[str, bytes],
) -> None:
    _compression, data = case

    summary = analyze(io.BytesIO(data))

    assert summary.packets >= 0
    assert summary.partial == bool(summary.partial_reason)


@FUZZ
@given(case=mutated())
def test_a_mutated_capture_never_yields_a_record_longer_than_the_file(case: tuple[str, bytes]) -> None:
    _compression, data = case
    reader = CaptureReader(io.BytesIO(data))

    caplens = [caplen for _ts, _link, _buf, _off, caplen, _wirelen in reader]

    assert all(0 <= caplen <= max(len(original(n)) for n in NAMES) for caplen in caplens)
    assert reader.partial == (reader.reason is not None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_analysis_time_is_bounded_by_the_bytes_read(case: tuple[str, bytes]) -> None:
    _compression, data = case
    budget = 0.2 + 50 * clean_seconds_per_byte() * max(len(data), 1)

    started = time.perf_counter()
    analyze(io.BytesIO(data))
    elapsed = time.perf_counter() - started

    assert elapsed <= budget, f"{elapsed:.3f} s for {len(data)} bytes (budget {budget:.3f} s)"


def _records(name: str) -> list[tuple[int, int, int]]:
    """Each record's (start, offset of its length word, packets before it): pcap's caplen, pcapng's
    block total length."""
    data = original(name)
    found: list[tuple[int, int, int]] = []
    if name.endswith(".pcap"):
        pos = 24
        while pos + 16 <= len(data):
            found.append((pos, pos + 8, len(found)))
            pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        return found
    pos, packets = 0, 0
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        found.append((pos, pos + 4, packets))
        packets += kind == 6
        pos += length
    return found


@FUZZ
@given(name=st.sampled_from(NAMES), which=st.integers(0, 40), forged=st.sampled_from(FORGED))
def test_a_forged_record_length_keeps_the_packets_before_it_and_one_past_the_end_is_partial(
    name: str, which: int, forged: int
) -> None:
    data = bytearray(original(name))
    records = _records(name)
    start, at, before = records[min(which, len(records) - 1)]
    struct.pack_into("<I", data, at, forged)
    header = 16 if name.endswith(".pcap") else 0
    reader = CaptureReader(io.BytesIO(bytes(data)))

    packets = sum(1 for _ in reader)

    assert packets >= before
    if start + header + forged > len(data):
        assert reader.partial, (start, forged)
    assert reader.partial == (reader.reason is not None)
