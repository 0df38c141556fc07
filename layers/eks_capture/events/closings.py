"""The "Capture Closed" event: the teardown's word that a capture ended, heard by the report function.

The teardown puts it on the stack's lifecycle bus, whose policy lets only the teardown's role put
events there, so nobody else can make the report function run. Even so the event is only a pointer:
the report function reads everything it reports and notifies from the capture's closed session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eks_capture.errors import CaptureRejected, FieldProblem
from eks_capture.events.envelopes import EventBridgeEnvelope
from eks_capture.events.models import CUSTOM_SOURCE
from eks_capture.ids import CAPTURE_ID_PATTERN
from eks_capture.store.sessions import CaptureSession, SessionStatus

CLOSED_DETAIL_TYPE = "Capture Closed"


class CaptureClosedDetail(BaseModel):
    """Which capture ended and how, for anyone reading the bus; the session holds the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    capture_id: str = Field(pattern=CAPTURE_ID_PATTERN)
    cluster: str = Field(min_length=1, max_length=100)
    status: SessionStatus
    verdict: str = Field(default="", max_length=2000)


class CaptureClosed(EventBridgeEnvelope):
    """The event as the report function's rule delivers it."""

    source: Literal["eks-capture"]
    detail_type: Literal["Capture Closed"] = Field(alias="detail-type")
    detail: CaptureClosedDetail


def parse_capture_closed(raw: Mapping[str, Any], expected_account: str | None = None) -> CaptureClosed:
    """The typed event, or CaptureRejected naming the first bad field (or a foreign account)."""
    try:
        event = CaptureClosed.model_validate(raw)
    except ValidationError as exc:
        problems = [
            FieldProblem(".".join(str(part) for part in error["loc"]) or "event", error["msg"])
            for error in exc.errors()
        ]
        raise CaptureRejected(problems[0].field, problems[0].message, problems) from None
    if expected_account is not None and event.account != expected_account:
        raise CaptureRejected("account", f"event from account {event.account}, expected {expected_account}")
    return event


def closed_entry(bus: str, session: CaptureSession) -> dict[str, str]:
    """The PutEvents entry announcing that ``session`` has closed."""
    detail = CaptureClosedDetail(
        capture_id=session.capture_id,
        cluster=session.cluster,
        status=session.status,
        verdict=session.verdict[:2000],
    )
    return {
        "EventBusName": bus,
        "Source": CUSTOM_SOURCE,
        "DetailType": CLOSED_DETAIL_TYPE,
        "Detail": detail.model_dump_json(),
    }


def announce_closed(events: Any, bus: str, session: CaptureSession) -> str | None:
    """Put the event on ``bus``: None once EventBridge has it, else why not (the caller notifies itself)."""
    try:
        response = events.put_events(Entries=[closed_entry(bus, session)])
    except (ClientError, BotoCoreError) as error:
        return f"the {CLOSED_DETAIL_TYPE} event could not be sent: {error}"
    if response.get("FailedEntryCount"):
        (entry,) = response["Entries"]
        return (
            f"the {CLOSED_DETAIL_TYPE} event was refused: "
            f"{entry.get('ErrorCode', 'unknown')} {entry.get('ErrorMessage', '')}".rstrip()
        )
    return None
