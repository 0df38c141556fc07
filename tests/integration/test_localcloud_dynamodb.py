"""The local DynamoDB refuses as the real one does: of concurrent conditional writes to one item, one wins;
an item is refused past 400 KB as it is after the write, not with an attribute's old and new value both."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.aws import MotoServer

WRITERS = 24


def _table(
    client: Any, name: str, key_schema: Sequence[tuple[str, Literal["HASH", "RANGE"]]] = (("pk", "HASH"),)
) -> str:
    """A new on-demand table ``name`` keyed by ``key_schema`` (string attributes): ``pk`` alone by default."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": attribute, "KeyType": kind} for attribute, kind in key_schema],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": "S"} for attribute, _ in key_schema
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_conditional_writes_of_one_item_let_exactly_one_through(
    aws: MotoServer, round_: int
) -> None:
    client = boto3.client("dynamodb", config=Config(max_pool_connections=WRITERS))
    _table(client, "sessions")
    # A session-sized item: moto copies it while it updates, which is when a second write could slip in.
    nodes = {f"node-{i}": {"M": {"status": {"S": "running"}, "job": {"S": f"job-{i}"}}} for i in range(1000)}
    item: dict[str, Any] = {"pk": {"S": "CAPTURE#1"}, "status": {"S": "running"}, "nodes": {"M": nodes}}
    client.put_item(TableName="sessions", Item=item)

    def close(writer: int) -> str:
        try:
            client.update_item(
                TableName="sessions",
                Key={"pk": {"S": "CAPTURE#1"}},
                UpdateExpression="SET #s = :done, closed_by = :me",
                ConditionExpression="#s = :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":done": {"S": "completed"},
                    ":running": {"S": "running"},
                    ":me": {"N": str(writer)},
                },
            )
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "written"

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        outcomes = list(pool.map(close, range(WRITERS)))

    assert outcomes.count("written") == 1
    assert outcomes.count("ConditionalCheckFailedException") == WRITERS - 1


@pytest.mark.parametrize(
    "key_schema",
    [
        pytest.param([("pk", "HASH")], id="hash key"),
        pytest.param([("pk", "HASH"), ("sk", "RANGE")], id="hash and range key"),
    ],
)
def test_a_cancelled_transaction_leaves_every_item_as_it_was(
    aws: MotoServer, key_schema: list[tuple[str, Literal["HASH", "RANGE"]]]
) -> None:
    client = boto3.client("dynamodb")
    _table(client, "catalog", key_schema)

    def key(pk: str) -> dict[str, Any]:
        return {name: {"S": pk if name == "pk" else "FILE#1"} for name, _ in key_schema}

    session = {**key("CAPTURE#1"), "files": {"N": "1"}, "nodes": {"M": {"node-1": {"S": "running"}}}}
    bystander = {**key("CAPTURE#2"), "files": {"N": "7"}}
    for item in (session, bystander):
        client.put_item(TableName="catalog", Item=item)

    with pytest.raises(ClientError) as refused:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "catalog", "Item": {**key("CAPTURE#3"), "files": {"N": "1"}}}},
                {
                    "Update": {
                        "TableName": "catalog",
                        "Key": key("CAPTURE#1"),
                        "UpdateExpression": "ADD files :one REMOVE nodes",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "catalog",
                        "Key": key("CAPTURE#2"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    items = client.scan(TableName="catalog", ConsistentRead=True)["Items"]
    assert sorted(items, key=lambda i: i["pk"]["S"]) == [session, bystander]


@pytest.mark.parametrize(
    ("kilobytes", "refused"),
    [(250, False), (410, True)],
    ids=["a 250 KB attribute replaced by another: stored", "an item past 400 KB: refused"],
)
def test_an_update_is_sized_as_the_item_will_be(aws: MotoServer, kilobytes: int, refused: bool) -> None:
    client = boto3.client("dynamodb")
    table = _table(client, "sized")
    key = {"pk": {"S": "CAPTURE#1"}}
    client.put_item(TableName=table, Item={**key, "nodes": {"S": "a" * 250_000}})

    def replace() -> None:
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET nodes = :v",
            ExpressionAttributeValues={":v": {"S": "b" * kilobytes * 1000}},
        )

    if refused:
        with pytest.raises(ClientError, match="Item size to update has exceeded the maximum allowed size"):
            replace()
    else:
        replace()
    stored = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["nodes"]["S"]
    assert stored[0] == ("a" if refused else "b")
