"""``start --wait``: follow a capture in the index until it ends (nodes, pods, files, verdict)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from eks_capture.store.sessions import CaptureSession
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.failures import CommandError

ENDED = ("completed", "failed", "rejected")
#: How long the trigger may take to record a request before we say it never arrived.
ACCEPT_SECONDS = 120.0


def stage(session: CaptureSession | None) -> str:
    """One line: where the capture is, in the words of its life cycle."""
    if session is None:
        return "waiting for the trigger to take the request"
    states = Counter(node.status for node in session.nodes.values())
    nodes = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no nodes chosen yet"
    totals = session.totals
    line = f"{session.status}: {len(session.nodes)} nodes ({nodes}); "
    line += f"{totals.files} files, {totals.packets:,} packets"
    if session.status in ENDED and session.verdict:
        line += f"; {session.verdict}"
    return line


def follow(
    catalog: Catalog,
    capture_id: str,
    *,
    timeout: float,
    poll_seconds: float = 1.0,
    accept_seconds: float = ACCEPT_SECONDS,
    console: Console | None = None,
) -> CaptureSession:
    """Poll the session until it ends, showing progress over its requested duration; the final session."""
    out = console or Console(stderr=True)
    started = time.monotonic()
    deadline = started + timeout
    session: CaptureSession | None = None
    with Progress(
        TextColumn("[bold]{task.fields[capture]}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=out,
        transient=False,
    ) as progress:
        task = progress.add_task(stage(None), total=None, capture=capture_id)
        while True:
            session = catalog.store.get_session(capture_id)
            if session is not None:
                elapsed = (datetime.now(UTC) - session.created_at).total_seconds()
                done = session.status in ENDED
                total = max(session.duration_seconds, 1)
                progress.update(
                    task,
                    description=stage(session),
                    total=total,
                    completed=total if done else min(elapsed, total),
                )
                if done:
                    return session
            if session is None and time.monotonic() - started >= accept_seconds:
                raise CommandError(
                    f"no session for {capture_id} after {accept_seconds:.0f}s: the trigger has not taken the "
                    "request (see the trigger function's logs)"
                )
            if time.monotonic() >= deadline:
                raise CommandError(f"gave up on {capture_id} after {timeout:.0f}s ({stage(session)})")
            time.sleep(poll_seconds)
