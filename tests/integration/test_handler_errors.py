"""The four functions, deployed from template.yaml in the local cloud, answer a malformed event alike.

Each gets an event it cannot parse: it is not retried (a malformed event stays malformed), the answer names
the field, and the function's output has one warning and one ``HandlerErrors`` metric for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.aws import MotoServer
from localcloud.router import Router
from localcloud.template import Stack
from tests.fixtures.stack import LOCAL_LAMBDA_ENV

FUNCTIONS = {
    "TriggerFunction": "trigger",
    "IndexerFunction": "indexer",
    "TeardownFunction": "teardown",
    "ReportFunction": "report",
}


@pytest.fixture
def logged(stack: Stack, aws: MotoServer, tmp_path: Path) -> Iterator[tuple[Router, Path]]:
    """The stack's functions in warm local processes, their stdout (logs and EMF metrics) in one file."""
    log = tmp_path / "functions.log"
    with log.open("w") as out:
        live = Router(stack, environment={**os.environ, **aws.env(), **LOCAL_LAMBDA_ENV}, log=out)
        live.deploy(create_resources=False)
        try:
            yield live, log
        finally:
            live.stop()


def _lines(log: Path, service: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("service") == service]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_malformed_event_is_answered_counted_and_not_retried(
    function: str, logged: tuple[Router, Path]
) -> None:
    router, log = logged

    invocation = router.invoke(function, {"detail-type": "Nonsense", "detail": {}})

    assert (invocation.error, invocation.attempts) == (None, 1)
    assert invocation.result["status"] == "error"
    assert invocation.result["error"]["error"] == "CaptureRejected"
    lines = _lines(log, FUNCTIONS[function])
    errors = [line for line in lines if "HandlerErrors" in line]
    assert [(e["HandlerErrors"], e["ErrorCode"]) for e in errors] == [([1.0], "CaptureRejected")]
    assert len([line for line in lines if line.get("level") == "WARNING"]) == 1
