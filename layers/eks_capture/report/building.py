"""Build a capture's incident report from the index and the files, and publish it next to the captures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from eks_capture.captures.context import ClusterContext, load_context
from eks_capture.errors import CaptureNotFound
from eks_capture.ids import CaptureId, capture_started_at
from eks_capture.pcap.paths import PathSummary
from eks_capture.report.links import DEFAULT_EXPIRY, s3_console_link, signing_s3_client
from eks_capture.report.pages import FileRow, FindingRow, Page, TalkerRow, render
from eks_capture.report.paths import capture_paths
from eks_capture.report.plots import timeline_svg
from eks_capture.report.timelines import NodeTimeline, node_timeline
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession

REPORT_NAME = "report.html"
MARGIN_SECONDS = 5
#: Marks further than this from the packets stay off the plots (they would squash the data to a line).
MAX_MARK_GAP_SECONDS = 900


def report_key(session: CaptureSession) -> str:
    """Where the report is stored: beside the capture's node folders."""
    return f"captures/{session.cluster}/{session.capture_id}/{REPORT_NAME}"


def capture_window(session: CaptureSession) -> tuple[datetime, datetime]:
    """When the capture ran: creation to its end (or to the requested duration, while it runs)."""
    end = session.ended_at or session.created_at + timedelta(seconds=session.duration_seconds)
    return session.created_at, end


def trigger_moment(session: CaptureSession) -> tuple[datetime, str]:
    """The time of the event that asked for the capture (the id carries it), and what to call it."""
    when = capture_started_at(CaptureId(session.capture_id))
    return when, ("alarm" if session.trigger.kind == "alarm" else "request")


def _near(moment: datetime, low: int, high: int) -> bool:
    """Whether a mark is close enough to the packets' seconds to share their plot."""
    return low - MAX_MARK_GAP_SECONDS <= moment.timestamp() <= high + MAX_MARK_GAP_SECONDS


@dataclass
class Report:
    """A built report: the page and what went into it."""

    html: str
    timelines: list[NodeTimeline]
    paths: PathSummary | None = None


class S3Files:
    """Opens indexed files and the capture's context from the bucket, streaming."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def open(self, record: FileRecord) -> Any:
        """The object's streaming body."""
        return self.client.get_object(Bucket=self.bucket, Key=record.s3_key)["Body"]

    def cluster_context(self, session: CaptureSession) -> ClusterContext | None:
        """The capture's cluster context, None when it has none or it cannot be read."""
        try:
            return load_context(self.client, self.bucket, session.cluster, session.capture_id)
        except (ClientError, ValueError, OSError):
            return None

    def context(self, session: CaptureSession) -> dict[str, str]:
        """IP -> name from the capture's context file, empty when it has none."""
        context = self.cluster_context(session)
        return context.names() if context else {}

    def link(self, key: str, expires: int) -> str:
        """A presigned GET link to ``key``."""
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url


def build(
    session: CaptureSession,
    files: list[FileRecord],
    storage: S3Files,
    *,
    console: str,
    expires: int = DEFAULT_EXPIRY,
    now: datetime | None = None,
) -> Report:
    """Analyse every node's files per second, match packets across the nodes, and render the page."""
    context = storage.cluster_context(session)
    names = context.names() if context else {}
    by_node: dict[str, list[FileRecord]] = defaultdict(list)
    for record in files:
        by_node[record.node].append(record)
    timelines = [node_timeline(node, by_node[node], storage.open, names) for node in sorted(by_node)]
    paths = capture_paths(files, storage.open, context)[0] if len(by_node) > 1 else None
    window = capture_window(session)
    alarm, alarm_label = trigger_moment(session)
    spans = [span for t in timelines if (span := t.seconds())]
    plots: list[tuple[str, str]] = []
    if spans:
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
        alarm_mark = alarm if _near(alarm, low, high) else None
        overlaps = window[0].timestamp() <= high + MAX_MARK_GAP_SECONDS
        overlaps = overlaps and window[1].timestamp() >= low - MAX_MARK_GAP_SECONDS
        window_mark = window if overlaps else None  # drawn clipped to the plot when it reaches far
        marks = [int(m.timestamp()) for m in (alarm, *window) if _near(m, low, high)]
        first = min([low, *marks]) - MARGIN_SECONDS
        last = max([high, *marks]) + MARGIN_SECONDS
        plots = [
            (
                t.node,
                timeline_svg(t, (first, last), alarm=alarm_mark, window=window_mark, alarm_label=alarm_label),
            )
            for t in timelines
            if t.packets
        ]
    findings = [
        FindingRow(t.node, f.severity, f.kind, f.message, f.count)
        for t in timelines
        if t.summary
        for f in t.summary.findings
    ]
    talkers = [
        TalkerRow(t.node, talker.address, talker.name or "", talker.bytes, talker.packets)
        for t in timelines
        if t.summary
        for talker in t.summary.top_talkers
    ]
    rows = [
        FileRow(
            r.node,
            r.s3_key,
            storage.link(r.s3_key, expires),
            r.first_ts,
            r.last_ts,
            r.packets,
            r.size,
            r.partial,
        )
        for t in timelines
        for r in t.files
    ]
    page = Page(
        session=session,
        alarm=alarm,
        alarm_label=alarm_label,
        window=window,
        plots=plots,
        findings=sorted(findings, key=lambda f: ({"critical": 0, "warning": 1}.get(f.severity, 2), -f.count)),
        talkers=talkers,
        files=rows,
        generated=now or datetime.now(UTC),
        console=console,
        paths=paths,
    )
    return Report(html=render(page), timelines=timelines, paths=paths)


@dataclass(frozen=True)
class Published:
    """A stored report: its key, a presigned link, and what the path analysis found (for notifications)."""

    key: str
    url: str
    path_findings: tuple[str, ...] = ()


def report_capture(
    capture_id: str,
    *,
    table: str,
    bucket: str,
    s3: Any = None,
    dynamodb: Any = None,
    expires: int = DEFAULT_EXPIRY,
) -> Published:
    """Build and store one capture's report; where it is and the path analysis' findings."""
    store = CaptureStore(table, dynamodb or boto3.client("dynamodb"))
    session = store.get_session(capture_id)
    if session is None:
        raise CaptureNotFound(capture_id)
    storage = S3Files(s3 or signing_s3_client(), bucket)
    built = build(
        session,
        store.files_of_capture(capture_id),
        storage,
        console=s3_console_link(bucket, session.s3_prefix),
        expires=expires,
    )
    key, url = publish(storage, session, built.html, expires)
    return Published(key, url, tuple(built.paths.findings()) if built.paths else ())


def publish(
    storage: S3Files, session: CaptureSession, html: str, expires: int = DEFAULT_EXPIRY
) -> tuple[str, str]:
    """Store the page next to the captures; its key and a presigned link valid for ``expires`` seconds."""
    key = report_key(session)
    storage.client.put_object(
        Bucket=storage.bucket,
        Key=key,
        Body=html.encode(),
        ContentType="text/html; charset=utf-8",
        Metadata={"capture-id": session.capture_id, "cluster": session.cluster},
    )
    return key, storage.link(key, expires)
