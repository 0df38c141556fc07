"""The agent's window decisions: reading the request the kubelet renders, which ring files answer it, when it
is settled, and how its reach is reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from eks_capture_agent.identity import SettingError
from eks_capture_agent.ledger import UploadedFile
from eks_capture_agent.recorder_state import window_from_state, window_state
from eks_capture_agent.recorder_windows import (
    Attempt,
    RingFile,
    Window,
    WindowRequest,
    overlapping,
    parse_annotations,
    parse_window_request,
    reach_verdict,
    window_settled,
)
from eks_capture_agent.ring import EvictedFile
from eks_capture_agent.spool import PcapName
from localcloud.kube.downward import render_map

CAPTURE_ID = "cap-20261125T130000Z-0a1b2c3d"
PREFIX = f"captures/demo/{CAPTURE_ID}/node-1/"
T = datetime(2026, 11, 25, 13, 0, 0, tzinfo=UTC).timestamp()


def request_text(**changes: object) -> str:
    document: dict[str, object] = {
        "capture_id": CAPTURE_ID,
        "from": "2026-11-25T12:55:00Z",
        "to": "2026-11-25T13:05:00.250000Z",
        "trigger_at": "2026-11-25T13:00:00Z",
        "prefix": PREFIX,
    }
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None})


def ring_file(start: float, end: float, closed: bool = True, counter: int = 0) -> RingFile:
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")
    return RingFile(PcapName(stamp, counter), start, end, closed)


def test_annotations_rendered_by_the_kubelet_read_back_to_the_same_values() -> None:
    values = {
        "eks-capture.io/window-request": request_text(),
        "eks-capture.io/reason": 'quotes " and \\ and unicode é',
        "kubernetes.io/config.seen": "2026-11-25T12:00:00Z",
    }
    assert parse_annotations(render_map(values)) == values


def test_a_request_reads_to_epoch_seconds_and_the_nodes_prefix() -> None:
    request = parse_window_request(request_text(), "demo", "node-1")
    assert request == WindowRequest(CAPTURE_ID, T - 300, T + 300.25, T, PREFIX)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"capture_id": "cap-1"}, "window-request.capture_id"),
        ({"from": "yesterday"}, "window-request.from"),
        ({"to": None}, "window-request.to"),
        ({"to": "2026-11-25T12:00:00Z"}, "window-request.to"),
        ({"prefix": "captures/demo/other/node-1/"}, "window-request.prefix"),
        ({"prefix": f"captures/demo/{CAPTURE_ID}/node-2/"}, "window-request.prefix"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(SettingError) as raised:
        parse_window_request(request_text(**changes), "demo", "node-1")
    assert raised.value.field == field


def test_a_request_without_a_trigger_time_treats_the_whole_window_as_after_it() -> None:
    request = parse_window_request(request_text(trigger_at=None), "demo", "node-1")
    assert request.trigger_at == request.start


WINDOW = WindowRequest(CAPTURE_ID, T - 60, T + 30, T, PREFIX)


@pytest.mark.parametrize(
    ("span", "meets"),
    [
        ((T - 120, T - 61), False),
        ((T - 120, T - 60), True),
        ((T - 70, T - 50), True),
        ((T - 10, T + 10), True),
        ((T + 30, T + 40), True),
        ((T + 31, T + 40), False),
        ((T - 120, T + 120), True),
    ],
    ids=[
        "ends-before",
        "ends-at-start",
        "straddles-start",
        "inside",
        "starts-at-end",
        "starts-after",
        "covers",
    ],
)
def test_a_file_answers_a_window_when_its_span_meets_it(span: tuple[float, float], meets: bool) -> None:
    assert (overlapping([ring_file(*span)], WINDOW) != []) is meets


def test_overlapping_files_come_oldest_first_in_tcpdumps_order() -> None:
    files = [ring_file(T, T + 5, counter=1), ring_file(T - 30, T - 20), ring_file(T, T + 2)]
    assert [f.name for f in overlapping(files, WINDOW)] == sorted(f.name for f in files)


@pytest.mark.parametrize(
    ("now", "newest_closed", "settled"),
    [
        (T + 29, True, False),
        (T + 31, False, False),
        (T + 31, True, True),
    ],
    ids=["window-not-over", "file-meeting-it-still-open", "over-and-closed"],
)
def test_a_window_is_settled_once_over_with_every_file_meeting_it_closed(
    now: float, newest_closed: bool, settled: bool
) -> None:
    files = [ring_file(T - 10, T), ring_file(T, T + 31, closed=newest_closed)]
    assert window_settled(files, WINDOW, now) is settled


@pytest.mark.parametrize(
    ("reached_from", "says"),
    [
        (T - 60, None),
        (T - 59.5, None),
        (T - 20, "the ring held only 20 s of the 60 s asked before the trigger"),
        (T + 5, "the ring held none of the 60 s asked before the trigger"),
        (None, "the ring held none of the 60 s asked before the trigger"),
    ],
)
def test_the_reach_says_how_much_of_the_lookback_the_ring_held(
    reached_from: float | None, says: str | None
) -> None:
    assert reach_verdict(WINDOW, reached_from) == says


def test_a_long_lookback_is_said_in_minutes() -> None:
    request = WindowRequest(CAPTURE_ID, T - 360, T + 30, T, PREFIX)
    assert (
        reach_verdict(request, T - 240)
        == "the ring held only 4.0 minutes of the 6.0 minutes asked before the trigger"
    )


def test_an_open_window_reads_back_from_the_recorders_state_as_it_was() -> None:
    window = Window(parse_window_request(request_text(), "demo", "node-1"), T - 10)
    window.wanted |= {"20261125T125950Z.pcap", "20261125T130000Z.pcap", "20261125T130000Z.pcap1"}
    for name in sorted(window.wanted):
        window.seq_of(name)
    window.attempted["20261125T130000Z.pcap"] = Attempt(f"{PREFIX}20261125T130000Z-00001.pcap.zst", 4096, 12)
    window.uploaded["20261125T125950Z.pcap"] = UploadedFile(
        "20261125T125950Z.pcap", f"{PREFIX}20261125T125950Z-00000.pcap.zst", 0, 8192, 900, 30,
        "2026-11-25T12:59:50Z", "2026-11-25T12:59:59Z", 0, "2026-11-25T13:00:01Z",
    )  # fmt: skip
    window.lost("20261125T130000Z.pcap1", "2026-11-25T13:00:02Z", EvictedFile(2048, 7))
    window.errors.append("an error")
    window.notes.append("a note")

    saved = json.loads(json.dumps(window_state(window)))

    assert window_from_state(saved) == window
