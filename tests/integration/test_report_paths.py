"""The report's "Path" section and the end notification's path findings, on the lossy two-node capture.

The router's iptables counters are the truth the picture must show; Debian's chromium draws the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from playwright.sync_api import sync_playwright

from eks_capture.captures.deps import Deps
from eks_capture.report import delivery
from eks_capture.report.building import report_capture
from eks_capture.settings import Settings
from localcloud.aws import MotoServer
from localcloud.template import Stack
from tests.fixtures.paths import CLIENT_POD, NODE_A, NODE_B, SERVER_POD, LossyNetwork, index_lossy_capture
from tests.fixtures.stack import STACK_PARAMETERS, deploy_stack

pytestmark = pytest.mark.root  # the captures are real tcpdump captures of namespaced nodes

CAPTURE = "cap-20261205T071500Z-5c6d7e8f"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
UPLOAD_SENTENCE = f"packets from {CLIENT_POD} on node {NODE_A} to {SERVER_POD} on node {NODE_B}"


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with an e-mail address, so it has a notification topic."""
    return deploy_stack({**STACK_PARAMETERS, "NotificationEmail": "oncall@example.com"}, monkeypatch)


@pytest.fixture
def indexed(stack: Stack, lossy_network: LossyNetwork) -> dict[str, str]:
    return index_lossy_capture(stack, lossy_network, CAPTURE)


def test_the_path_picture_shows_what_the_networks_counters_dropped_drawn_by_a_real_browser(
    indexed: dict[str, str], lossy_network: LossyNetwork
) -> None:
    published = report_capture(
        CAPTURE, table=indexed["CaptureTableName"], bucket=indexed["CaptureBucketName"]
    )

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda r: r.continue_() if r.request.url == published.url else r.abort())
            page.goto(published.url)
            pictures = page.eval_on_selector_all(
                "div.path svg",
                "svgs => svgs.map(s => ({w: s.getBoundingClientRect().width,"
                " texts: Array.from(s.querySelectorAll('text')).map(t => t.textContent)}))",
            )
            rows = page.eval_on_selector_all("#paths tbody tr", "rows => rows.length")
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("div.path").first.screenshot(path=str(ARTIFACTS / f"report-path-{CAPTURE}.png"))
        finally:
            browser.close()
    assert errors == []
    (picture,) = pictures  # one node pair
    assert picture["w"] > 600
    texts = picture["texts"]
    assert f"lost between: {lossy_network.a_to_b:,} (" in " ".join(texts)
    assert f"lost between: {lossy_network.b_to_a:,} (" in " ".join(texts)
    short_a, short_b = NODE_A.split(".", 1)[0], NODE_B.split(".", 1)[0]
    assert (texts.count(short_a), texts.count(short_b)) == (2, 2)  # one row per direction
    assert rows == 4  # upload, its ACKs, DNS questions, DNS answers


def test_the_end_notification_says_where_packets_were_lost(
    stack: Stack, indexed: dict[str, str], lossy_network: LossyNetwork
) -> None:
    sqs = boto3.client("sqs")
    inbox = sqs.create_queue(QueueName="oncall-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(
        TopicArn=stack.physical_id("NotificationTopic"), Protocol="sqs", Endpoint=arn
    )

    done = delivery.deliver(Deps.for_settings(Settings.from_env()), CAPTURE, lambda: 600.0)

    assert done.status == "notified", done
    messages: list[dict[str, Any]] = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1).get("Messages", [])
    ]
    (body,) = [m["Message"] for m in messages]
    findings = body.split("Top findings:\n", 1)[1].split("\nNodes:", 1)[0]
    upload_line = next(line for line in findings.splitlines() if UPLOAD_SENTENCE in line)
    assert "were lost between the nodes" in upload_line
    lost = int(upload_line.split("- ", 1)[1].split(" of ", 1)[0].replace(",", ""))
    assert 0 < lost <= lossy_network.a_to_b  # the upload's share of the router's drops (the DNS has the rest)
