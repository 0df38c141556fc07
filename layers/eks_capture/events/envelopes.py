"""The EventBridge envelope every event arrives in, and the schedule's tick, which is nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EventBridgeEnvelope(BaseModel):
    """The fields EventBridge puts around every event's ``detail``."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    version: str
    id: str = Field(min_length=1, max_length=256)
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str
    time: datetime
    region: str
    resources: tuple[str, ...] = ()
    replay_name: str | None = Field(default=None, alias="replay-name")


class ScheduledEvent(EventBridgeEnvelope):
    """The periodic tick of an EventBridge schedule rule (source ``aws.events``)."""

    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any] = Field(default_factory=dict)
