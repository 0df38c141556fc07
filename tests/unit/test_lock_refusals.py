"""How a node lock batch DynamoDB refused past the retries is said: in a node's record, whether the event is
worth Lambda's retry, and in a capture's verdict, where a refused batch is a hundred nodes with one reason."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from eks_capture.captures.record import by_reason
from eks_capture.store.keys import TRANSACTION_ATTEMPTS, is_transient, refusal_in_short, refusal_in_words

PROVISIONED = (
    "The level of configured provisioned throughput for the table was exceeded. Consider increasing your "
    "provisioning level with the UpdateTable API."
)
CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons"
THROTTLING_ERROR = "Throughput exceeds the current capacity of your table or index."


def _refusal(code: str, message: str, retries: int = 0, reasons: list[dict[str, str]] | None = None) -> Any:
    answer: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RetryAttempts": retries},
    }
    if reasons is not None:
        answer["CancellationReasons"] = reasons
    return ClientError(answer, "TransactWriteItems")  # type: ignore[arg-type]


REFUSALS: dict[str, tuple[ClientError, str, bool]] = {
    "throughput exceeded past botocore's retries": (
        _refusal("ProvisionedThroughputExceededException", PROVISIONED, retries=7),
        f"ProvisionedThroughputExceededException after 8 attempts: {PROVISIONED}",
        True,
    ),
    "a transaction cancelled for a throttled item on each of its attempts": (
        _refusal(
            "TransactionCanceledException",
            f"{CANCELLED} [None, ThrottlingError]",
            reasons=[{"Code": "None"}, {"Code": "ThrottlingError", "Message": THROTTLING_ERROR}],
        ),
        f"TransactionCanceledException (ThrottlingError) after {TRANSACTION_ATTEMPTS} attempts: "
        + THROTTLING_ERROR,
        True,
    ),
    "access denied, which botocore does not retry": (
        _refusal("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/r/s is not authorized"),
        "AccessDeniedException after 1 attempt: User: arn:aws:sts::1:assumed-role/r/s is not authorized",
        False,
    ),
    "a transaction cancelled for a validation error": (
        _refusal(
            "TransactionCanceledException",
            f"{CANCELLED} [ValidationError]",
            reasons=[
                {"Code": "ValidationError", "Message": "Item size has exceeded the maximum allowed size"}
            ],
        ),
        "TransactionCanceledException (ValidationError) after 1 attempt: Item size has exceeded the maximum "
        "allowed size",
        False,
    ),
}


@pytest.mark.parametrize(("error", "words", "transient"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_is_said_with_its_code_its_attempts_and_dynamodbs_words(
    error: ClientError, words: str, transient: bool
) -> None:
    assert refusal_in_words(error) == words
    assert words.startswith(f"{refusal_in_short(error)}: ")
    assert is_transient(error) is transient


NODE_REASONS: dict[str, tuple[dict[str, str], str]] = {
    "one node": ({"a": "why"}, "a: why"),
    "two reasons": ({"a": "why", "b": "other"}, "a: why; b: other"),
    "three nodes sharing a reason": ({"a": "why", "b": "why", "c": "why"}, "a: why; b: why; c: why"),
    "a batch sharing a reason": (
        {**{f"n{i:03d}": "lock refused" for i in range(100)}, "x": "held"},
        "n000, n001, n002 and 97 more: lock refused; x: held",
    ),
}


@pytest.mark.parametrize(("reasons", "said"), NODE_REASONS.values(), ids=NODE_REASONS.keys())
def test_more_than_three_nodes_sharing_a_reason_are_named_together_the_first_three_by_name(
    reasons: dict[str, str], said: str
) -> None:
    assert by_reason(reasons) == said
