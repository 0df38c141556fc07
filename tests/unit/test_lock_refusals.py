"""How a node lock batch DynamoDB refused past the retries is said: in a node's record (whole, however many
nodes share the session item), whether the event is worth Lambda's retry, and in a capture's verdict, where
a refused batch is a hundred nodes with one reason."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from eks_capture.captures.launch import Launched, LockRefusal
from eks_capture.captures.record import by_reason
from eks_capture.settings import Settings
from eks_capture.store.keys import TRANSACTION_ATTEMPTS, is_transient, refusal_code, refusal_in_words
from eks_capture.store.sessions import NodeCapture, NodeStatus, node_attribute

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


#: The most nodes a capture takes: each node's reason then keeps 64 bytes of the session item.
MOST_NODES = Settings.model_fields["max_nodes_per_capture"].metadata[-1].le

REFUSALS: dict[str, tuple[ClientError, str, str, bool]] = {
    "throughput exceeded past botocore's retries": (
        _refusal("ProvisionedThroughputExceededException", PROVISIONED, retries=7),
        "ProvisionedThroughputExceededException",
        f"ProvisionedThroughputExceededException after 8 attempts: {PROVISIONED}",
        True,
    ),
    "a transaction cancelled for a throttled item on each of its attempts": (
        _refusal(
            "TransactionCanceledException",
            f"{CANCELLED} [None, ThrottlingError]",
            reasons=[{"Code": "None"}, {"Code": "ThrottlingError", "Message": THROTTLING_ERROR}],
        ),
        "ThrottlingError",
        f"TransactionCanceledException (ThrottlingError) after {TRANSACTION_ATTEMPTS} attempts: "
        + THROTTLING_ERROR,
        True,
    ),
    "access denied, which botocore does not retry": (
        _refusal("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/r/s is not authorized"),
        "AccessDeniedException",
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
        "ValidationError",
        "TransactionCanceledException (ValidationError) after 1 attempt: Item size has exceeded the maximum "
        "allowed size",
        False,
    ),
}


@pytest.mark.parametrize(("error", "code", "words", "transient"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_is_said_with_its_code_its_attempts_and_dynamodbs_words(
    error: ClientError, code: str, words: str, transient: bool
) -> None:
    assert refusal_code(error) == code
    assert refusal_in_words(error) == words
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "code"), [(error, code) for error, code, _, _ in REFUSALS.values()], ids=REFUSALS.keys()
)
def test_a_refused_nodes_reason_keeps_the_code_telling_throttled_from_denied_whole_among_the_most_nodes(
    error: ClientError, code: str
) -> None:
    reason = LockRefusal.of(("node-a",), error).reason

    kept = node_attribute(NodeCapture(node="node-a", reason=reason), MOST_NODES)["reason"]

    assert kept == reason == f"node lock not taken: {code}"


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


def _launched(
    refused: str, *others: tuple[NodeStatus, str | None], found_job: bool = False, transient: bool = True
) -> Launched:
    """A launch whose batch of two nodes DynamoDB refused with the code ``refused``, and ``others``: each
    node's (status, why it was skipped); ``found_job``: an earlier attempt's Job found on a refused node."""
    refusal = LockRefusal(("r0", "r1"), refused, f"{refused} after 8 attempts", transient)
    failed = [NodeCapture(node=name, status="failed", reason=refusal.reason) for name in refusal.nodes]
    if found_job:
        failed[0] = failed[0].model_copy(update={"status": "pending", "reason": "", "job": "job-r0"})
    results: list[tuple[NodeCapture, str | None]] = [(node, None) for node in failed]
    results += [(NodeCapture(node=f"o{i}", status=status), why) for i, (status, why) in enumerate(others)]
    unlocked = frozenset(node.node for node in failed if node.status == "failed")
    return Launched(results, [refusal], unlocked)


WORTH_RETRYING: dict[str, tuple[Launched, bool]] = {
    "every node throttled": (_launched("ThrottlingError"), True),
    "every node denied": (_launched("AccessDeniedException", transient=False), False),
    "the other nodes held by another capture": (
        _launched("ThrottlingError", ("pending", "already being captured by cap-b")),
        True,
    ),
    "another node locked and its Job made": (_launched("ThrottlingError", ("pending", None)), False),
    "an earlier attempt's Job found on a refused node": (_launched("ThrottlingError", found_job=True), False),
}


@pytest.mark.parametrize(("launched", "retry"), WORTH_RETRYING.values(), ids=WORTH_RETRYING.keys())
def test_the_event_is_retried_when_no_node_lock_was_taken_and_a_later_try_may_take_the_refused_ones(
    launched: Launched, retry: bool
) -> None:
    assert launched.worth_retrying is retry
