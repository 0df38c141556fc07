"""A function's bundle: given clients used as they are, the others made once when first used."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.captures.deps import AwsClients, Deps
from eks_capture.settings import Settings

ENV = {
    "CAPTURE_BUCKET": "pcaps",
    "CAPTURE_TABLE": "index",
    "CAPTURE_IMAGE": "agent:1",
    "CAPTURE_IMAGE_TAGS_ALLOWED": "true",
}


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")


def test_a_given_client_is_used_as_it_is_and_the_others_are_made_once() -> None:
    given = object()
    aws = AwsClients(cloudwatch=given)

    assert aws.cloudwatch is given
    assert aws.s3 is aws.s3
    config: Any = aws.s3.meta.config
    assert config.signature_version == "s3v4"
    config = aws.dynamodb.meta.config
    assert config.retries["total_max_attempts"] == 9  # botocore counts max_attempts as retries: 8 + the call


def test_an_unknown_client_name_is_refused() -> None:
    with pytest.raises(TypeError, match="no AWS client named lambda_"):
        AwsClients(lambda_=object())


@pytest.mark.parametrize(("topic", "has_sns"), [("", False), ("arn:aws:sns:us-west-2:123456789012:t", True)])
def test_sns_is_there_only_when_the_stack_notifies(topic: str, has_sns: bool) -> None:
    deps = Deps.for_settings(Settings.from_env({**ENV, "NOTIFICATION_TOPIC_ARN": topic}))

    assert (deps.sns is not None) == has_sns
    assert ("sns" in vars(deps.aws)) == has_sns


def test_the_index_speaks_through_the_bundles_dynamodb_client() -> None:
    deps = Deps.for_settings(Settings.from_env(ENV))

    assert deps.store.table_name == "index"
    assert deps.store._client is deps.aws.dynamodb


def test_the_clients_a_function_uses_are_made_at_cold_start_but_sns_only_for_a_topic() -> None:
    deps = Deps.for_settings(Settings.from_env(ENV), uses=("cloudwatch", "s3", "sns"))

    assert set(vars(deps.aws)) == {"dynamodb", "cloudwatch", "s3"}
