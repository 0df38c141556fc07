"""The local DynamoDB refuses as the real one does: of concurrent conditional writes to one item, one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.aws import MotoServer

WRITERS = 24


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_conditional_writes_of_one_item_let_exactly_one_through(
    aws: MotoServer, round_: int
) -> None:
    client = boto3.client("dynamodb", config=Config(max_pool_connections=WRITERS))
    client.create_table(
        TableName="sessions",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
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
