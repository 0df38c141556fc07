"""A capture session's item fits DynamoDB's 400 KB whatever its nodes were told: each node's reason and what
matched it share a budget, the verdict and the skipped targets are capped, and cut text says it was cut; its
notifications fit SNS's 256 KB alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eks_capture.captures.notifications import end_message, start_message
from eks_capture.captures.plan import Outcome
from eks_capture.captures.record import start_log_fields
from eks_capture.ids import new_capture_id
from eks_capture.settings import Settings
from eks_capture.store.keys import serialize, session_index_keys, session_key
from eks_capture.store.sessions import CaptureSession, NodeCapture, Totals, Trigger, session_attributes
from eks_capture.store.sizes import (
    NODE_TEXT_MOST,
    NOTE_BYTES,
    NOTES_NAMED,
    SKIPPED_NAMED,
    SKIPPED_TEXT_BYTES,
    VERDICT_BYTES,
    clipped,
    named_notes,
    named_skips,
    node_text_limit,
)
from tests.fixtures.item_sizes import DYNAMODB_ITEM_LIMIT, item_size

MOST_NODES = 1_000  # Settings.max_nodes_per_capture's bound
#: What the largest session item takes, by DynamoDB's rules (docs/design.md "Session size").
WORST_CASE_BYTES = 368_000
WIDE = "\U0001f600"  # four bytes in UTF-8: the most bytes a character takes
START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SNS_MESSAGE_LIMIT = 256 * 1024
LOG_EVENT_LIMIT = 256 * 1024  # CloudWatch Logs' most bytes in one event
SETTINGS = Settings(
    capture_bucket="shop-pcaps",
    capture_table="capture-index",
    capture_image="example.com/eks-capture@sha256:" + "0" * 64,
)


@pytest.mark.parametrize(
    ("text", "limit", "kept"),
    [
        ("short enough", 12, "short enough"),
        ("x" * 100, 40, "x" * 15 + "…(truncated, 100 bytes)"),
        ("é" * 50, 40, "é" * 7 + "…(truncated, 100 bytes)"),  # a 2-byte character is not split
        (WIDE * 10, 30, WIDE + "…(truncated, 40 bytes)"),
        ("x" * 100, 10, "…(truncated, 100 bytes)"),  # no room for any of it: the marker still says so
    ],
)
def test_text_over_its_limit_keeps_its_head_and_says_how_long_it_was(
    text: str, limit: int, kept: str
) -> None:
    assert clipped(text, limit) == kept


@pytest.mark.parametrize(
    ("nodes", "limit"),
    [(1, NODE_TEXT_MOST), (31, NODE_TEXT_MOST), (100, 640), (MOST_NODES, 64)],
)
def test_a_capture_of_few_nodes_keeps_whole_reasons_and_one_of_the_most_nodes_64_bytes_each(
    nodes: int, limit: int
) -> None:
    assert node_text_limit(64_000, nodes) == limit


def test_skipped_targets_past_the_named_ones_are_counted_by_reason() -> None:
    skipped = {f"n{i}": "over the cap of 1000 nodes per capture" for i in range(4_000)} | {"m": "NotReady"}

    kept = named_skips(skipped)

    assert list(kept) == [f"n{i}" for i in range(SKIPPED_NAMED)] + [f"and {4_001 - SKIPPED_NAMED} more"]
    assert kept[f"and {4_001 - SKIPPED_NAMED} more"] == (
        f"over the cap of 1000 nodes per capture ({4_000 - SKIPPED_NAMED}); NotReady (1)"
    )
    assert named_skips({"a": "NotReady", "b": "gone"}) == {"a": "NotReady", "b": "gone"}


def test_skipped_targets_whose_names_are_cut_alike_are_counted_not_merged() -> None:
    long = "service shop/" + "x" * 200

    kept = named_skips({f"{long}-a": "gone: a", f"{long}-b": "gone: b"})

    assert kept == {clipped(f"{long}-a", SKIPPED_TEXT_BYTES): "gone: a", "and 1 more": "gone: b (1)"}


def test_notes_past_the_named_ones_are_counted_and_each_named_one_keeps_its_head() -> None:
    notes = [f"service shop/api: endpoint 10.0.{i // 256}.{i % 256} is not ready" for i in range(4_000)]
    notes[0] = "pod shop/" + WIDE * 1_000 + " is not scheduled on a node yet"

    kept = named_notes(notes)

    assert kept == [
        clipped(notes[0], NOTE_BYTES),
        *notes[1:NOTES_NAMED],
        f"and {4_000 - NOTES_NAMED} more",
    ]
    assert len(kept[0].encode()) <= NOTE_BYTES
    assert named_notes(notes[1:3]) == notes[1:3]  # a few short ones whole


def _node_name(index: int) -> str:
    """An EKS node name of the longest kind (51 characters): the instance id's in the longest region."""
    return f"i-{index:017x}.ap-southeast-3.compute.internal"


def _worst_session() -> CaptureSession:
    """A session of the most nodes with every text at or past its longest, in four-byte characters."""
    capture_id = new_capture_id(START)
    return CaptureSession(
        capture_id=capture_id,
        cluster="c" * 100,  # EKS's longest cluster name
        status="completed",
        trigger=Trigger(
            kind="alarm",
            reason=WIDE * 1024,  # the trigger keeps 1,024 characters of the alarm's reason
            event_id="e" * 36,
            alarm_name="a" * 255,
            alarm_arn="arn:aws:cloudwatch:ap-southeast-3:123456789012:alarm:" + "a" * 255,
        ),
        created_at=START,
        expires_at=START + timedelta(hours=2),
        duration_seconds=3_600,
        filter="f" * 1024,
        snaplen=262_144,
        preset="p" * 64,
        limited={f"cap {i}": "r" * 200 for i in range(3)},
        nodes={
            _node_name(i): NodeCapture(
                node=_node_name(i),
                instance_id=f"i-{i:017x}",
                matched_by=WIDE * 5_000,
                job=f"{capture_id.lower()}-" + "j" * (62 - len(capture_id)),  # Job names: 63 at most
                status="deadline_exceeded",
                reason=f"{i}: " + WIDE * 5_000,  # each node told something else (no two group)
            )
            for i in range(MOST_NODES)
        },
        skipped={f"{i} " + WIDE * 300: WIDE * 300 for i in range(4_000)},
        totals=Totals(files=10**9, packets=10**15, bytes=10**15, dropped=10**15),
        findings=[WIDE * 512 for _ in range(5)],  # the reaper keeps five
        s3_prefix="captures/" + "c" * 100 + f"/{capture_id}/",
        ended_at=START + timedelta(hours=2),
        verdict=WIDE * 100_000,
        index_wait_since=START + timedelta(hours=1),
    )


def test_the_largest_session_fits_dynamodbs_item_with_a_tenth_to_spare() -> None:
    session = _worst_session()
    item = {
        **session_key(session.capture_id),
        **session_index_keys(session.cluster, session.created_at, session.trigger.alarm_name),
        **session_attributes(session),
    }

    size = item_size(serialize(item))

    assert size <= WORST_CASE_BYTES <= 0.9 * DYNAMODB_ITEM_LIMIT, size
    assert max(len(n["reason"].encode()) for n in item["nodes"].values()) <= 64
    assert len(item["verdict"].encode()) <= VERDICT_BYTES


@pytest.mark.parametrize("message", [start_message, end_message])
def test_the_largest_sessions_notifications_fit_sns_and_name_every_node(message: Any) -> None:
    session = _worst_session()
    session.verdict = "v" * VERDICT_BYTES  # as the trigger and the reaper store it

    _subject, body = message(SETTINGS, session)

    assert len(body.encode()) <= SNS_MESSAGE_LIMIT
    assert all(f"  - {name}: deadline_exceeded (" in body for name in session.nodes)


def test_a_few_nodes_notification_keeps_their_whole_reasons() -> None:
    session = _worst_session()
    whole = "create jobs refused by an admission webhook (HTTP 400): " + "x" * 1_500
    session.nodes = {
        n: node.model_copy(update={"reason": whole}) for n, node in list(session.nodes.items())[:2]
    }

    _subject, body = start_message(SETTINGS, session)

    assert body.count(f": deadline_exceeded ({whole})\n") == 2


def test_the_start_log_line_of_the_largest_capture_fits_one_cloudwatch_logs_event() -> None:
    session = _worst_session()
    outcome = Outcome(
        "running", "v" * VERDICT_BYTES, session.capture_id, dict.fromkeys(session.nodes, "pending")
    )
    outcome.skipped.update(session.skipped)

    notes = [  # a service of 5,000 endpoints none of which is ready: one note each
        f"service {'s' * 253}/{'n' * 63}: endpoint 10.{i // 65_536}.{i // 256 % 256}.{i % 256} is not ready: "
        "its node is not captured"
        for i in range(5_000)
    ]

    fields = start_log_fields(session, outcome, notes)

    assert len(json.dumps({"message": outcome.message, **fields}).encode()) <= LOG_EVENT_LIMIT
    assert fields["skipped"] == named_skips(session.skipped)
    assert fields["notes"] == named_notes(notes)
    assert fields["nodes"] == outcome.nodes  # every node named still
