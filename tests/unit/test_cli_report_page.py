"""The report page: one plot per node with packets, marks only where they can be read, every file linked."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eks_capture.ids import new_capture_id
from eks_capture.pcap import analyze_file
from eks_capture.report.building import S3Files, build
from eks_capture.report.plots import MAX_POINTS, rates, timeline_svg
from eks_capture.report.timelines import NodeTimeline
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession, Trigger

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
FILES = {"node-a": CAPTURES / "any-nano-head.pcap", "node-b": CAPTURES / "server-head.pcapng"}


class LocalFiles(S3Files):
    """The files from disk instead of S3, links to nowhere: the page logic alone."""

    def __init__(self) -> None:
        super().__init__(client=None, bucket="local")

    def open(self, record: FileRecord) -> Any:
        return FILES[record.node].open("rb")

    def cluster_context(self, session: CaptureSession) -> None:
        return None

    def link(self, key: str, expires: int) -> str:
        return f"https://files.invalid/{key}"


def _records(capture_id: str) -> list[FileRecord]:
    records = []
    for node, path in FILES.items():
        summary = analyze_file(path)
        records.append(
            FileRecord(
                capture_id=capture_id,
                cluster="shop-prod",
                node=node,
                s3_key=f"k/{node}/{path.name}",
                size=path.stat().st_size,
                packets=summary.packets,
                bytes=summary.bytes,
                first_ts=summary.first_ts,
                last_ts=summary.last_ts,
            )
        )
    return records


def _session(started: datetime) -> CaptureSession:
    return CaptureSession(
        capture_id=new_capture_id(started),
        cluster="shop-prod",
        trigger=Trigger(kind="manual", reason="page test", event_id="e"),
        created_at=started,
        expires_at=started + timedelta(minutes=5),
        duration_seconds=60,
        s3_prefix="k/",
    )


@pytest.mark.parametrize(("offset", "marked"), [(timedelta(0), True), (timedelta(hours=10), False)])
def test_each_node_gets_a_plot_and_far_away_marks_are_left_off(offset: timedelta, marked: bool) -> None:
    first = min(analyze_file(path).first_ts for path in FILES.values())  # type: ignore[type-var]
    assert first is not None
    started = first.replace(microsecond=0) - offset
    session = _session(started)

    report = build(session, _records(session.capture_id), LocalFiles(), console="https://console.invalid")

    html = report.html
    assert html.count('<figure data-node="') == len(FILES)
    assert (f"request {started:%H:%M:%S}Z" in html) is marked
    for node, path in FILES.items():
        assert f'<a href="https://files.invalid/k/{node}/{path.name}">' in html
    assert "<script" not in html


def test_a_capture_without_packets_says_so() -> None:
    session = _session(datetime(2026, 11, 25, 3, 12, tzinfo=UTC))

    report = build(session, [], LocalFiles(), console="https://console.invalid")

    assert "No packets were captured." in report.html
    assert "No files were indexed." in report.html


@pytest.mark.parametrize(
    ("counts", "step", "expected"),
    [
        pytest.param({10: 4, 12: 2}, 1, [4.0, 0.0, 2.0, 0.0], id="per-second"),
        pytest.param({10: 4, 12: 2}, 2, [2.0, 1.0], id="two-second-average"),
        pytest.param({10: 3, 11: 3, 12: 3, 13: 3}, 3, [3.0, 1.0], id="last-bucket-partly-outside"),
    ],
)
def test_long_captures_are_drawn_as_averaged_rates(
    counts: dict[int, int], step: int, expected: list[float]
) -> None:
    assert rates(Counter(counts), 10, 13, step) == expected


def test_a_day_long_capture_is_drawn_with_a_bounded_number_of_points() -> None:
    day = 86_400
    timeline = NodeTimeline(node="node-a", packets=Counter({s: 1 for s in range(0, day, 7)}))

    svg = timeline_svg(timeline, (0, day - 1), alarm=None, window=None)

    assert f"averaged over {-(-day // MAX_POINTS)} s" in svg
    assert len(svg) < 1_000_000
