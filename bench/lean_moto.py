"""moto's server without two of its costs that grow with a DynamoDB table, for load runs of 10,000 writes.

``python -m bench.lean_moto -H 127.0.0.1 -p PORT`` takes moto.server's arguments.

- moto keeps every model instance it ever made in a registry its dashboard reads, copies included:
  10,000 transactions kept millions of item copies (past 8 GB). Here DynamoDB's models are not kept.
- moto's TransactWriteItems deep-copies each table it touches, once per item of the transaction, to put
  the copy back if the transaction is cancelled: ~0.2 s per transaction on a 500-item table. Here the
  items the transaction names are copied and put back instead, which is what DynamoDB's per-item
  isolation gives when requests arrive one at a time (localcloud.outages.DynamoDBProxy serializes them).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import moto.dynamodb.models as dynamodb
from moto import server
from moto.core.model_instances import model_data
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table


class Untracked(list[Any]):
    """A registry that keeps nothing."""

    def append(self, instance: Any) -> None:
        return


class TablesUncopied:
    """The ``copy`` module as moto's DynamoDB backend sees it: a table is not copied (its items are)."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_whole_table_transaction = dynamodb.DynamoDBBackend.transact_write_items


def transact_write_items(self: dynamodb.DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, undone item by item when it fails."""
    saved: list[tuple[Table, DynamoType, DynamoType | None, Item | None]] = []
    for entry in transact_items:
        operation = next(iter(entry.values()))
        table = self.get_table(operation["TableName"])
        key = operation.get("Key") or operation["Item"]
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    try:
        _whole_table_transaction(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            home: dict[Any, Any] = table.items[hash_key] if range_key is not None else table.items
            slot = hash_key if range_key is None else range_key
            if item is None:
                home.pop(slot, None)
            else:
                home[slot] = item
        raise


def main() -> None:
    for model in model_data["dynamodb"].values():
        model.instances_tracked = Untracked()  # type: ignore[attr-defined]
    setattr(dynamodb, "copy", TablesUncopied)  # noqa: B010 - the module's global, not an attribute of ours
    setattr(dynamodb.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
