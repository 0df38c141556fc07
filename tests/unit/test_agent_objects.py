"""S3 keys and metadata per docs/design.md, and the retry schedule."""

from __future__ import annotations

import random
from calendar import timegm

import pytest

from eks_capture_agent.backoff import CAP_SECONDS, retry_delay
from eks_capture_agent.identity import Identity
from eks_capture_agent.objects import FILTER_METADATA_CHARS, metadata_filter, pcap_key, pcap_metadata
from eks_capture_agent.pcapscan import PcapSummary

IDENTITY = Identity(
    "cap-20261125T120000Z-0a1b2c3d", "demo", "ip-10-0-1-5.ec2.internal", "i-0123456789abcdef0"
)
START = timegm((2026, 11, 25, 12, 44, 20, 0, 0, 0)) + 0.75


def test_keys_carry_the_utc_start_and_a_five_digit_sequence() -> None:
    assert (
        pcap_key("captures/demo/cap/n/", START, 7, ".zst")
        == "captures/demo/cap/n/20261125T124420Z-00007.pcap.zst"
    )


def test_keys_sort_by_start_then_sequence() -> None:
    keys = [
        pcap_key("p/", START + offset, seq, ".zst") for offset, seq in [(0, 9), (0, 10), (1, 11), (100, 12)]
    ]
    assert sorted(keys) == keys


def test_metadata_names_the_capture_and_the_packets_it_holds() -> None:
    summary = PcapSummary(
        packets=12, first_packet=START, last_packet=START + 2.5, linktype=1, trailing_bytes=0
    )
    metadata = pcap_metadata(IDENTITY, "tcp port 443", 3, summary)
    assert metadata == {
        "capture-id": IDENTITY.capture_id, "cluster": "demo", "node": IDENTITY.node,
        "instance-id": IDENTITY.instance_id, "filter": "tcp port 443", "seq": "3",
        "first-packet": "2026-11-25T12:44:20.750000Z", "last-packet": "2026-11-25T12:44:23.250000Z",
        "packets": "12",
    }  # fmt: skip


def test_packet_times_are_left_out_when_unknown() -> None:
    empty = PcapSummary(packets=0, first_packet=None, last_packet=None, linktype=1, trailing_bytes=0)
    anonymous = Identity(IDENTITY.capture_id, "demo", "node-1", None)
    for summary in (empty, None):
        metadata = pcap_metadata(anonymous, "", 0, summary)
        assert not {"first-packet", "last-packet", "instance-id"} & set(metadata)


@pytest.mark.parametrize(
    ("capture_filter", "header"),
    [
        ("tcp port 443\n  and not\thost 10.0.0.1", "tcp port 443 and not host 10.0.0.1"),
        ("port 53 # café", "port 53 # caf?"),
    ],
)
def test_filters_become_one_printable_header_line(capture_filter: str, header: str) -> None:
    assert metadata_filter(capture_filter) == header


def test_very_long_filters_are_cut_with_a_mark() -> None:
    long_filter = " or ".join(f"host 10.0.{n // 256}.{n % 256}" for n in range(300))
    header = metadata_filter(long_filter)
    assert len(header) == FILTER_METADATA_CHARS
    assert header.endswith("...")
    assert long_filter.startswith(header[:-3])


def test_retry_delays_grow_and_are_capped() -> None:
    rng = random.Random(7)
    delays = [retry_delay(failures, rng) for failures in range(1, 12)]
    assert retry_delay(0) == 0
    assert delays[0] <= 0.5
    assert max(delays) <= CAP_SECONDS
    assert delays[-1] >= CAP_SECONDS / 2
    assert delays[4] > delays[0]
