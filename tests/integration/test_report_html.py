"""``report`` writes a self-contained incident page that a real browser draws, stored beside the captures.

The capture holds real faulty traffic (retransmissions, resets, unanswered SYNs, DNS failures) seen by
two nodes; tshark is the oracle for the per-second counts and Debian's chromium renders the page.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright
from typer.testing import CliRunner

from eks_capture.ids import CaptureId, capture_started_at, new_capture_id
from eks_capture.report.building import S3Files, build, report_capture, report_key
from eks_capture.store.catalog import CaptureStore
from eks_capture_cli import app
from localcloud.template import Stack
from tests.fixtures.node_uploads import NODE_A, NODE_B, Upload, index_uploads, make_uploads
from tests.fixtures.stack import stack_outputs
from tests.fixtures.traffic import Captures

pytestmark = pytest.mark.root  # real traffic from network namespaces; tshark as the oracle

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _tshark_seconds(paths: list[Path], display_filter: str | None = None) -> Counter[int]:
    seconds: Counter[int] = Counter()
    for path in paths:
        command = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"]
        if display_filter:
            command += ["-Y", display_filter]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        seconds.update(int(Decimal(line)) for line in out.split())
    return seconds


@pytest.fixture
def capture(
    stack: Stack, faulty_captures: Captures, tmp_path: Path
) -> tuple[str, list[Upload], CaptureStore]:
    """One capture of the faulty traffic on two nodes, indexed, with its id stamped at the traffic's start."""
    work = tmp_path / "sources"
    work.mkdir()
    first_second = min(_tshark_seconds([faulty_captures["ethernet.pcap"]]))
    started = datetime.fromtimestamp(first_second, tz=UTC)
    capture_id = new_capture_id(started)
    uploads = [u for u in make_uploads(faulty_captures, work, first=capture_id) if u.capture_id == capture_id]
    store = index_uploads(stack, uploads, created=started)
    return capture_id, uploads, store


def test_per_second_series_agree_with_tshark_and_add_up_to_the_summary(
    stack: Stack, capture: tuple[str, list[Upload], CaptureStore]
) -> None:
    capture_id, uploads, store = capture
    session = store.get_session(capture_id)
    assert session is not None
    storage = S3Files(boto3.client("s3"), stack_outputs(stack)["CaptureBucketName"])

    report = build(session, store.files_of_capture(capture_id), storage, console="https://console")

    by_node = {t.node: t for t in report.timelines}
    assert sorted(by_node) == [NODE_A, NODE_B]
    for node, timeline in by_node.items():
        files = [u.plain for u in uploads if u.node == node]
        assert timeline.packets == _tshark_seconds(files)
        summary = timeline.summary
        assert summary is not None
        assert sum(timeline.retransmissions.values()) == summary.tcp.retransmissions
        assert sum(timeline.resets.values()) == summary.tcp.resets
        assert sum(timeline.unanswered_syns.values()) == summary.tcp.unanswered_syns
        dns = summary.dns
        assert sum(timeline.dns_failures.values()) == dns.servfail + dns.nxdomain + dns.unanswered
    client = by_node[NODE_A]
    assert client.resets == _tshark_seconds(
        [u.plain for u in uploads if u.node == NODE_A], "tcp.flags.reset == 1"
    )
    assert sum(client.retransmissions.values()) > 0
    assert sum(client.unanswered_syns.values()) > 0
    assert sum(client.dns_failures.values()) > 0


def test_the_report_is_stored_beside_the_captures_and_drawn_by_a_real_browser(
    stack: Stack, capture: tuple[str, list[Upload], CaptureStore], tmp_path: Path
) -> None:
    capture_id, uploads, store = capture
    outputs = stack_outputs(stack)
    local = tmp_path / "report.html"
    options = ["--table", outputs["CaptureTableName"], "--bucket", outputs["CaptureBucketName"]]

    result = CliRunner().invoke(app, ["report", capture_id, "-o", str(local), *options])

    assert result.exit_code == 0, result.stderr
    url = result.stdout.strip()
    session = store.get_session(capture_id)
    assert session is not None
    assert report_key(session) in url
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["3600"]  # SigV4: the link says when it dies
    with urllib.request.urlopen(url) as response:  # the presigned link, as the notification carries it
        assert response.read() == local.read_bytes()
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: _console_error(m, errors))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url)
            figures = page.locator("figure")
            drawn = page.eval_on_selector_all(
                "figure",
                """figs => figs.map(f => Array.from(f.querySelectorAll('svg g[id^="line2d"] path'))
                    .filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length)""",
            )
            nodes = [figures.nth(i).get_attribute("data-node") for i in range(figures.count())]
            links = page.eval_on_selector_all("#files a[href]", "as => as.map(a => a.textContent)")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report-{capture_id}.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert nodes == [NODE_A, NODE_B]
    assert all(count >= 5 for count in drawn), drawn  # one step line per series, plus the marks
    assert sorted(links) == sorted(u.name for u in uploads)
    assert capture_started_at(CaptureId(session.capture_id)).strftime("%H:%M:%S") in local.read_text()


def _console_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type in ("error", "warning"):
        errors.append(f"{message.type}: {message.text}")


def test_the_end_of_capture_hook_publishes_the_same_report_by_capture_id(
    stack: Stack, capture: tuple[str, list[Upload], CaptureStore]
) -> None:
    capture_id, uploads, store = capture
    outputs = stack_outputs(stack)

    published = report_capture(
        capture_id, table=outputs["CaptureTableName"], bucket=outputs["CaptureBucketName"], expires=300
    )

    session = store.get_session(capture_id)
    assert session is not None
    assert published.key == report_key(session)
    assert parse_qs(urlparse(published.url).query)["X-Amz-Expires"] == ["300"]  # SigV4: the expiry is signed
    with urllib.request.urlopen(published.url) as response:
        page = response.read().decode()
    assert f"Capture {capture_id}" in page
    assert page.count('<figure data-node="') == len({u.node for u in uploads})
