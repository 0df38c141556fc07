"""S3 "object created" in both forms it arrives in: EventBridge's event and the classic notification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eks_capture.events.envelopes import EventBridgeEnvelope

#: S3's sequencers are hexadecimal, 16-18 digits today; a longer one than this is not S3's.
SEQUENCER_DIGITS = 32
_SEQUENCER = rf"^[0-9A-Fa-f]{{1,{SEQUENCER_DIGITS}}}$"


def ordered_sequencer(sequencer: str) -> str:
    """An event's ``sequencer`` spelt so that string order is S3's order of the writes of one key (the later
    write's is greater): upper-case, right-padded with zeros to SEQUENCER_DIGITS, as S3 says to compare two
    sequencers of different lengths."""
    return sequencer.upper().ljust(SEQUENCER_DIGITS, "0")


@dataclass(frozen=True)
class S3ObjectRef:
    """One created object, the same whichever way S3 announced it (key decoded)."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    sequencer: str | None  # orders the writes of one key; only meaningful between events of the same key


class _S3Detail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class S3Bucket(_S3Detail):
    """The bucket of an S3 event."""

    name: str = Field(min_length=3)


class S3EventBridgeObject(_S3Detail):
    """The object of an EventBridge S3 event (its key arrives as written, not URL-encoded)."""

    key: str = Field(min_length=1)
    size: int | None = None
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = Field(default=None, pattern=_SEQUENCER)


class S3ObjectCreatedDetail(_S3Detail):
    """The ``detail`` of an EventBridge ``Object Created`` event."""

    bucket: S3Bucket
    object: S3EventBridgeObject
    reason: str | None = None


class S3ObjectCreated(EventBridgeEnvelope):
    """S3 ``Object Created`` delivered through EventBridge (source ``aws.s3``)."""

    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: S3ObjectCreatedDetail

    def objects(self) -> tuple[S3ObjectRef, ...]:
        """The created object."""
        obj = self.detail.object
        return (S3ObjectRef(self.detail.bucket.name, obj.key, obj.size, obj.etag, obj.sequencer),)


class S3NotificationObject(_S3Detail):
    """The object of a classic S3 notification record; the key is URL-encoded there and decoded here."""

    key: str = Field(min_length=1)
    size: int | None = None
    e_tag: str | None = Field(default=None, alias="eTag")
    version_id: str | None = Field(default=None, alias="versionId")
    sequencer: str | None = Field(default=None, pattern=_SEQUENCER)

    @field_validator("key")
    @classmethod
    def _decode(cls, key: str) -> str:
        return unquote_plus(key)


class S3Entity(_S3Detail):
    """The ``s3`` part of a notification record."""

    bucket: S3Bucket
    object: S3NotificationObject


class S3NotificationRecord(_S3Detail):
    """One record of a classic S3 event notification."""

    event_source: Literal["aws:s3"] = Field(alias="eventSource")
    event_name: str = Field(alias="eventName", pattern=r"^ObjectCreated:")
    event_time: datetime = Field(alias="eventTime")
    aws_region: str = Field(alias="awsRegion")
    s3: S3Entity


class S3Notification(BaseModel):
    """A classic S3 event notification (``Records``), as S3 invokes a function directly."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    records: tuple[S3NotificationRecord, ...] = Field(alias="Records", min_length=1)

    def objects(self) -> tuple[S3ObjectRef, ...]:
        """Every created object, in record order."""
        return tuple(
            S3ObjectRef(
                r.s3.bucket.name, r.s3.object.key, r.s3.object.size, r.s3.object.e_tag, r.s3.object.sequencer
            )
            for r in self.records
        )
