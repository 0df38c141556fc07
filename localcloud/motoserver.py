"""moto's server with what moto 5.2.5 lacks and the stack uses, installed before it serves.

- EKS: access entries and their access policies, add-ons, Pod Identity associations and the cluster's
  ``accessConfig`` (localcloud/eks_access.py).
- S3: GetBucketNotificationConfiguration answers the ``EventBridgeConfiguration`` that
  PutBucketNotificationConfiguration stored (moto keeps it, and sends events by it, but never returns it).
- S3: an ``Object Created`` event sent to EventBridge as S3 sends it: the object's ETag as ``etag`` (moto
  writes ``eTag``, the classic notification's name, which the EventBridge event does not have) and a
  sequencer that orders the writes of one key, a later write's greater (moto sends one constant, so a
  key written twice announced two writes no one could order). The sequencer is S3's kind: 18 hex digits
  from a clock that never repeats; S3 says only that it orders the events of one key. (Taken as the event
  is sent, after moto stored the object: two PUTs of one key racing each other may be sequenced out of the
  order moto stored them in; writes one after another are in order.)
- DynamoDB: one request at a time. moto answers each request on its own thread and its backend reads an
  item, checks a condition and writes it without a lock, so two conditional writes of one item arriving
  together could both pass (two sweeps closing one capture); DynamoDB applies each write to an item
  atomically and refuses the second with ConditionalCheckFailedException. (moto's handling is Python
  under one GIL: serializing it costs little.)
- DynamoDB: a cancelled TransactWriteItems puts back the items it touched, not whole tables. moto deep-copies
  every table a transaction names before running it (once per item of the transaction), which makes each
  transaction cost as much as the table is big; requests being one at a time, only the transaction's own
  items can have changed, so restoring them leaves the same state. (Tables with a stream keep moto's copy:
  its stream records are part of what the copy restores.)
- DynamoDB: an update sizes the item as it will be. moto adds a set attribute's new value to the item's size
  with its old value still counted, so replacing a 250 KB attribute with another one was refused as a
  500 KB item ("Item size to update has exceeded the maximum allowed size") where DynamoDB stores it.
- EKS: CreateCluster checks the role ARN's partition against one boto3 Session made at start-up. moto makes a
  new Session per check, which reads botocore's endpoints.json (about 1 MB of JSON) again each time: a
  fifth of the CPU of setting up each test's cluster. The partitions are botocore's fixed data either way.
- ``/moto-api/access-keys.json``: the secret of each access key STS knows (assumed-role sessions' and IAM
  users'), which the Kubernetes emulator checks a token's SigV4 signature with (localcloud/kube/auth.py).
  moto's ``/moto-api/data.json`` has them too, but it serializes every model instance: once a test uses EC2
  (its ~1,300 AMIs) that is 12 MB and 1.2 s of this server's CPU, past the emulator's 10 s limit on a
  loaded machine, where a valid token then got 401 for an "unknown access key".

``python -m localcloud.motoserver -H 127.0.0.1 -p PORT`` takes moto.server's arguments.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import moto.dynamodb.models
import moto.eks.utils
import moto.moto_api._internal.urls
import moto.s3.notifications as s3_notifications
from moto import server
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import unix_time
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import events_backends
from moto.events.utils import _BASE_EVENT_MESSAGE
from moto.iam.models import iam_backends
from moto.s3.responses import S3Response
from moto.sts.models import sts_backends

from localcloud import eks_access


def _rule(item: Any, arn_key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"Id": item.id, arn_key: item.arn, "Events": item.events}
    if item.filters:
        rule["Filter"] = {"Key": {"FilterRules": item.filters["S3Key"]["FilterRule"]}}
    return rule


def get_bucket_notification(self: S3Response) -> Any:
    """moto's answer, plus ``EventBridgeConfiguration`` when the bucket sends its events to EventBridge."""
    configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
    if not configuration:
        return self.serialized(EmptyResult())
    result: dict[str, Any] = {
        "TopicConfigurations": [_rule(t, "TopicArn") for t in configuration.topic],
        "QueueConfigurations": [_rule(q, "QueueArn") for q in configuration.queue],
        "LambdaFunctionConfigurations": [_rule(f, "LambdaFunctionArn") for f in configuration.cloud_function],
    }
    if configuration.event_bridge is not None:
        result["EventBridgeConfiguration"] = {}
    self.data["Action"] = "GetBucketNotificationConfiguration"
    return self.serialized(ActionResult(result))


class Sequencer:
    """S3's sequencers for the events of one server: hex, each greater than the one before."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return f"{self._last:018X}"


def s3_events_as_sent() -> None:
    """S3's EventBridge events name ``etag`` and order the writes of a key (see the module's docstring)."""
    sequencer = Sequencer()

    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        event = copy.deepcopy(_BASE_EVENT_MESSAGE)
        event.update(
            {
                "detail-type": s3_notifications._detail_type(event_name),
                "source": "aws.s3",
                "account": account_id,
                "time": unix_time(),
                "region": bucket.region_name,
                "resources": [bucket.arn],
            }
        )
        found = {"key": key.name, "size": key.size, "etag": key.etag.strip('"')}
        if key.version_id is not None:
            found["version-id"] = key.version_id
        event["detail"] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": {**found, "sequencer": sequencer.next()},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": account_id,
            "source-ip-address": "1.2.3.4",
            "reason": event_name.split(":")[1],  # s3:ObjectCreated:Put -> ObjectCreated (as moto says it)
        }
        try:
            backend = events_backends[account_id][bucket.region_name]
            for bus in backend.event_buses.values():
                for rule in bus.rules.values():
                    rule.send_to_targets(event, transform_input=False)
        except Exception as error:  # S3 delivers events after the PUT succeeded: its answer stays a success
            print(f"S3 event for {bucket.name}/{key.name} not delivered: {error!r}", file=sys.stderr)

    setattr(s3_notifications, "_send_event_bridge_message", send)  # noqa: B010


def atomic_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time (see the module's docstring)."""
    one_at_a_time = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialized(self: DynamoHandler) -> Any:
        with one_at_a_time:
            return call_action(self)

    setattr(DynamoHandler, "call_action", serialized)  # noqa: B010


@dataclass(frozen=True)
class _SavedItem:
    """One item as it was before a transaction: ``before`` None when absent."""

    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    had_hash_key: bool
    before: Item | None

    def restore(self) -> None:
        items: dict[Any, Any] = self.table.items
        if self.range_key is None:
            if self.before is None:
                items.pop(self.hash_key, None)
            else:
                items[self.hash_key] = self.before
            return
        ranges = items[self.hash_key]
        if self.before is None:
            ranges.pop(self.range_key, None)
        else:
            ranges[self.range_key] = self.before
        if not self.had_hash_key and not ranges:
            del items[self.hash_key]


def _saved_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_SavedItem] | None:
    """Copies of the items a transaction names (None when a table has a stream: moto's copy is needed)."""
    saved = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName", ""))
        if table is None:
            continue  # moto refuses the transaction before writing anything for this entry
        if table.stream_shard is not None:
            return None
        key = op.get("Item" if op_type == "Put" else "Key") or {}
        if table.hash_key_attr not in key or (table.has_range_key and table.range_key_attr not in key):
            continue  # moto refuses it with a validation error, having written nothing for it
        hash_key, range_key = backend.get_keys_value(table, key)
        before = copy.deepcopy(table.get_item(hash_key, range_key))
        saved.append(_SavedItem(table, hash_key, range_key, hash_key in table.items, before))
    return saved


class _TablesNotCopied:
    """moto.dynamodb.models' ``copy`` module, except that a Table "copy" is the table itself."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


@contextmanager
def _tables_not_copied() -> Iterator[None]:
    models: Any = moto.dynamodb.models
    models.copy = _TablesNotCopied
    try:
        yield
    finally:
        models.copy = copy


def item_level_transactions() -> None:
    """Cancelled transactions put back the items they touched instead of whole tables (see the module's
    docstring); atomic_dynamodb() must be installed too, as it makes this exact."""
    transact_write_items = DynamoDBBackend.transact_write_items

    def restoring_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = _saved_items(self, transact_items)
        if saved is None:
            return transact_write_items(self, transact_items)
        with _tables_not_copied():
            try:
                return transact_write_items(self, transact_items)
            except Exception:
                for item in reversed(saved):
                    item.restore()
                raise

    setattr(DynamoDBBackend, "transact_write_items", restoring_items)  # noqa: B010


#: moto's item size limit: DynamoDB's 400 KB, which moto's authors measured to fall between 409 and 410 KB.
ITEM_SIZE_LIMIT = 405_000


def _size(value: Any) -> int:
    """An attribute name's or value's size as moto counts it."""
    return value.size() if type(value) is DynamoType else bytesize(str(value))


def items_sized_as_updated() -> None:
    """A set attribute's old value no longer counts beside its new one (see the module's docstring)."""

    def setitem(self: LimitedSizeDict, key: str, value: Any) -> None:
        kept = sum(_size(name) + _size(old) for name, old in self.items() if name != key)
        if kept + _size(key) + _size(value) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    setattr(LimitedSizeDict, "__setitem__", setitem)  # noqa: B010


def partitions_read_once() -> None:
    """moto's EKS role ARN check asks one Session for the partitions (see the module's docstring)."""
    session = boto3.Session()
    session.get_available_partitions()  # read endpoints.json now, before requests share the session
    setattr(moto.eks.utils, "Session", lambda: session)  # noqa: B010


def access_keys(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """Each access key id STS knows, with its secret (see the module's docstring)."""
    secrets: dict[str, str] = {}  # list(): requests on other threads may add accounts, sessions, users
    for sts_by_partition in list(sts_backends.values()):
        for sts in list(sts_by_partition.values()):
            secrets.update((role.access_key_id, role.secret_access_key) for role in list(sts.assumed_roles))
    for iam_by_partition in list(iam_backends.values()):
        for iam in list(iam_by_partition.values()):
            for user in list(iam.users.values()):
                secrets.update((key.access_key_id, key.secret_access_key) for key in list(user.access_keys))
    return 200, {"Content-Type": "application/json"}, json.dumps(secrets)


def main() -> None:
    eks_access.install()
    moto.moto_api._internal.urls.url_paths["{0}/moto-api/access-keys.json"] = access_keys
    atomic_dynamodb()
    item_level_transactions()
    items_sized_as_updated()
    partitions_read_once()
    s3_events_as_sent()
    setattr(S3Response, "get_bucket_notification", get_bucket_notification)  # noqa: B010
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
