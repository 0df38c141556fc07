"""Every pcap that lands under captures/ is streamed through the analyzer and indexed with its summary.

The object is never loaded whole (the analyzer reads the S3 body in chunks), so a 2 GB file fits a
1 GB Lambda. Indexing is idempotent: the file item is a conditional write in the same transaction as
the session totals, so a redelivered S3 event changes nothing.

A key may be written again (the recorder puts a longer copy of a file tcpdump still had open, under the
same key): the index keeps the latest version. The object is read IfMatch the event's ETag, so what is
analysed is the version the event announced and is recorded with that event's sequencer; when S3 holds
another version by then, this event changes nothing (the later write's own event indexes it), and an event
older than the version indexed changes nothing either (store/files.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from eks_capture.captures.context import ContextCache
from eks_capture.errors import CaptureRejected
from eks_capture.events.models import S3Notification, S3ObjectCreated, parse_event
from eks_capture.events.s3 import S3ObjectRef, ordered_sequencer
from eks_capture.ids import is_capture_id
from eks_capture.pcap import analyze
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord

logger = Logger(child=True)

_CAPTURE_KEY = re.compile(
    r"^captures/(?P<cluster>[^/]+)/(?P<capture_id>[^/]+)/(?P<node>[^/]+)/(?P<name>[^/]+)$"
)
PCAP_SUFFIXES = (".pcap", ".pcap.gz", ".pcap.zst", ".pcapng", ".pcapng.gz", ".pcapng.zst")

#: ``replaced``: a later version of an indexed key; ``superseded``: the event's version is not the latest
#: (S3 holds another by now, or a later one is indexed), so nothing changed.
IndexStatus = Literal["indexed", "replaced", "duplicate", "superseded", "ignored"]


@dataclass(frozen=True)
class CaptureKey:
    """Where a pcap sits in the captures/ layout (docs/design.md)."""

    cluster: str
    capture_id: str
    node: str
    name: str


@dataclass(frozen=True)
class IndexOutcome:
    key: str
    status: IndexStatus
    message: str
    packets: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "message": self.message, "packets": self.packets}


def parse_capture_key(key: str) -> CaptureKey | None:
    """The capture a key belongs to, or None when it is outside the captures/ layout or not a pcap."""
    match = _CAPTURE_KEY.match(key)
    if match is None or not is_capture_id(match["capture_id"]) or not match["name"].endswith(PCAP_SUFFIXES):
        return None
    return CaptureKey(match["cluster"], match["capture_id"], match["node"], match["name"])


def index_object(
    ref: S3ObjectRef, store: CaptureStore, s3: Any, contexts: ContextCache | None = None
) -> IndexOutcome:
    """Analyze one object, naming endpoints from its capture's context, and write its file item once."""
    where = parse_capture_key(ref.key)
    if where is None:
        logger.info(f"ignored s3://{ref.bucket}/{ref.key}: not a pcap in the captures/ layout")
        return IndexOutcome(ref.key, "ignored", "not a pcap in the captures/ layout")
    try:
        response = s3.get_object(
            Bucket=ref.bucket, Key=ref.key, **({"IfMatch": ref.etag} if ref.etag else {})
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
            raise
        logger.info(
            f"s3://{ref.bucket}/{ref.key} was written again since this event (ETag {ref.etag} no longer "
            "there): its later write's event indexes it, nothing changed"
        )
        return IndexOutcome(ref.key, "superseded", "written again since this event")
    metadata = {k.lower(): v for k, v in response.get("Metadata", {}).items()}
    names = (contexts or ContextCache(s3)).names(ref.bucket, where.cluster, where.capture_id)
    summary = analyze(response["Body"], context=names)
    record = FileRecord(
        capture_id=where.capture_id,
        cluster=where.cluster,
        node=where.node,
        s3_key=ref.key,
        size=int(response.get("ContentLength", ref.size or 0)),
        packets=summary.packets,
        bytes=summary.bytes,
        first_ts=summary.first_ts,
        last_ts=summary.last_ts,
        instance_id=metadata.get("instance-id") or None,
        link_type=",".join(summary.link_types),
        partial=summary.partial,
        partial_reason=summary.partial_reason or "",
        pre_trigger=metadata.get("pre-trigger") == "true",  # a recorder's file that ends before the trigger
        summary=summary.model_dump(mode="json"),
        etag=str(response["ETag"]).strip('"'),  # the version read: the event's, IfMatch it
        sequencer=ordered_sequencer(ref.sequencer) if ref.sequencer else None,
    )
    written = store.record_file(record)
    if written == "duplicate":
        logger.info(f"s3://{ref.bucket}/{ref.key} was indexed already: nothing changed")
        return IndexOutcome(ref.key, "duplicate", "indexed already", summary.packets)
    if written == "stale":
        logger.info(
            f"s3://{ref.bucket}/{ref.key}: a later version is indexed already, this older one "
            f"(sequencer {ref.sequencer}) is ignored: nothing changed"
        )
        return IndexOutcome(ref.key, "superseded", "a later version is indexed", summary.packets)
    top = summary.findings[0].message if summary.findings else "no findings"
    partial = f", partial: {summary.partial_reason}" if summary.partial else ""
    again = " (a later version replaced the one indexed)" if written == "replaced" else ""
    logger.info(
        f"indexed s3://{ref.bucket}/{ref.key}{again}: {summary.packets} packets{partial}; {top}",
        extra={"capture_id": where.capture_id, "node": where.node, "packets": summary.packets},
    )
    return IndexOutcome(ref.key, written, f"{summary.packets} packets{partial}", summary.packets)


def handle(raw: dict[str, Any], store: CaptureStore, s3: Any = None) -> list[IndexOutcome]:
    """Index every object an S3 event (EventBridge or classic notification) announces."""
    event = parse_event(raw)
    if not isinstance(event, S3ObjectCreated | S3Notification):
        raise CaptureRejected("detail-type", "the indexer handles S3 Object Created events only")
    client = s3 or boto3.client("s3")
    contexts = ContextCache(client)
    return [index_object(ref, store, client, contexts) for ref in event.objects()]
