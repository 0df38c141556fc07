"""The local cloud's DynamoDB throttling rules and the error bodies they answer with."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from localcloud.aws import ACCOUNT_ID, REGION
from localcloud.outages import DENIED_PRINCIPAL, Throttling, ThrottlingAnswer, throttling_reply

INVALID_RULES: dict[str, dict[str, Any]] = {
    "a share above one": {"rate": 1.5},
    "a negative share": {"rate": -0.1},
    "a single-item call cancelled like a transaction": {
        "operations": frozenset({"PutItem"}),
        "error": "TransactionCanceledException",
    },
    "every call cancelled like a transaction": {"error": "TransactionCanceledException"},
    "a single-item read leaving keys unprocessed": {
        "operations": frozenset({"GetItem"}),
        "error": "UnprocessedKeys",
    },
    "every call leaving keys unprocessed": {"error": "UnprocessedKeys"},
}


@pytest.mark.parametrize("fields", INVALID_RULES.values(), ids=INVALID_RULES.keys())
def test_a_rule_dynamodb_could_not_follow_is_refused_naming_the_field(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^(rate|operations)"):
        Throttling(**fields)


@pytest.mark.parametrize(
    ("operations", "operation", "applies"),
    [
        (frozenset(), "Query", True),
        (frozenset({"PutItem", "UpdateItem"}), "UpdateItem", True),
        (frozenset({"PutItem", "UpdateItem"}), "GetItem", False),
    ],
)
def test_a_rule_without_operations_applies_to_every_call(
    operations: frozenset[str], operation: str, applies: bool
) -> None:
    assert Throttling(operations).applies_to(operation) is applies


@pytest.mark.parametrize(
    ("body", "applies"),
    [
        ('{"TransactItems": [{"Put": {"Item": {"pk": {"S": "LOCK#shop-prod#hot"}}}}]}', True),
        ('{"TransactItems": [{"Put": {"Item": {"pk": {"S": "LOCK#shop-prod#cold"}}}}]}', False),
    ],
)
def test_a_rule_naming_a_key_applies_only_to_requests_that_name_it(body: str, applies: bool) -> None:
    rule = Throttling(frozenset({"TransactWriteItems"}), naming="LOCK#shop-prod#hot")

    assert rule.applies_to("TransactWriteItems", body) is applies


def test_a_denied_transaction_is_answered_as_iam_refuses_its_first_items_action() -> None:
    request = {"TransactItems": [{"Put": {"TableName": "captures", "Item": {}}}] * 2}

    body = json.loads(
        throttling_reply("AccessDeniedException", request, random.Random(0), "TransactWriteItems")
    )

    assert body == {
        "__type": "com.amazon.coral.service#AccessDeniedException",
        "Message": f"User: {DENIED_PRINCIPAL} is not authorized to perform: dynamodb:PutItem on resource: "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/captures with an explicit deny in an identity-based "
        "policy",
    }


@pytest.mark.parametrize(
    ("error", "wire_type"),
    [
        (
            "ProvisionedThroughputExceededException",
            "dynamodb.v20120810#ProvisionedThroughputExceededException",
        ),
        ("ThrottlingException", "coral.availability#ThrottlingException"),
    ],
)
def test_a_throttled_call_gets_dynamodbs_error_type_and_a_message(
    error: ThrottlingAnswer, wire_type: str
) -> None:
    body = json.loads(throttling_reply(error, {"TableName": "t"}, random.Random(0), "PutItem"))

    assert body["__type"].endswith(wire_type)
    assert body["message"]


@pytest.mark.parametrize("items", [1, 2, 5])
def test_a_cancelled_transaction_names_one_throttled_item_among_its_items(items: int) -> None:
    request = {"TransactItems": [{"Put": {"TableName": "t", "Item": {}}}] * items}

    body = json.loads(
        throttling_reply("TransactionCanceledException", request, random.Random(items), "TransactWriteItems")
    )

    codes = [reason["Code"] for reason in body["CancellationReasons"]]
    assert len(codes) == items
    assert codes.count("ThrottlingError") == 1
    assert set(codes) <= {"ThrottlingError", "None"}
    assert body["__type"].endswith("#TransactionCanceledException")
