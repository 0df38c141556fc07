"""The README's deploy steps that could surprise a new user, run for real: the existing bucket's EventBridge
switch (against moto, with Debian's jq) and ``make test`` on a machine without Python 3.13."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import boto3

from localcloud.aws import MotoServer
from localcloud.template import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BUCKET = "my-existing-bucket"


def readme_jq_filter() -> str:
    """The jq filter of the README's existing-bucket command (the one a user copies)."""
    match = re.search(r"\| jq -s '([^']+)' > notification\.json", README.read_text())
    assert match, "the README's existing-bucket command is gone"
    return match.group(1)


def cli_output(response: dict[str, Any]) -> str:
    """What ``aws s3api get-bucket-notification-configuration --output json`` prints for a response."""
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    return json.dumps(body, indent=4) if body else ""


def merged_by_readme(current: str) -> dict[str, Any]:
    done = subprocess.run(["jq", "-s", readme_jq_filter()], input=current, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def object_created_events_reach(queue_url: str) -> None:
    """Route the default bus's S3 Object Created events to ``queue_url``, as the indexer's rule hears them."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [BUCKET]}},
    }
    events.put_rule(Name="indexer", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="indexer", Targets=[{"Id": "queue", "Arn": arn}])


def test_the_readmes_merge_turns_on_eventbridge_and_keeps_the_buckets_other_notifications(
    aws: MotoServer,
) -> None:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    their_queue = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="their-queue")["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"Id": "theirs", "QueueArn": their_queue, "Events": ["s3:ObjectRemoved:*"]}
            ]
        },
    )
    heard = sqs.create_queue(QueueName="heard-by-eventbridge")["QueueUrl"]
    object_created_events_reach(heard)

    merged = merged_by_readme(cli_output(dict(s3.get_bucket_notification_configuration(Bucket=BUCKET))))
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=merged)  # type: ignore[arg-type]
    s3.put_object(Bucket=BUCKET, Key="captures/shop-prod/x.pcap.zst", Body=b"pcap")

    after = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    assert [(q["Id"], q["QueueArn"]) for q in after["QueueConfigurations"]] == [("theirs", their_queue)]
    messages = sqs.receive_message(QueueUrl=heard, WaitTimeSeconds=5).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["object"]["key"] for m in messages] == [
        "captures/shop-prod/x.pcap.zst"
    ]


def test_the_warning_is_true_putting_eventbridge_alone_drops_the_other_notifications(aws: MotoServer) -> None:
    s3, sns = boto3.client("s3"), boto3.client("sns")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    topic = sns.create_topic(Name="their-topic")["TopicArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]
        },
    )

    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    assert not s3.get_bucket_notification_configuration(Bucket=BUCKET).get("TopicConfigurations")


def test_the_readmes_merge_works_on_a_bucket_with_no_notifications_yet(aws: MotoServer) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})

    merged = merged_by_readme(cli_output(dict(s3.get_bucket_notification_configuration(Bucket=BUCKET))))

    assert merged == {"EventBridgeConfiguration": {}}
    assert merged_by_readme("{}") == merged


def test_make_test_without_python_313_says_how_to_get_it(tmp_path: Path) -> None:
    empty = tmp_path / "no-python"
    empty.mkdir()
    argv = ["make", "--no-print-directory", "-o", ".venv-sam/.synced", "build-stack", f"PY313_BIN={empty}"]
    done = subprocess.run(
        argv,
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )

    assert done.returncode != 0
    assert "needs Python 3.13" in done.stderr
    assert "pyenv install 3.13.0" in done.stderr
    assert "sam build --use-container" in done.stderr
    assert f"PY313_BIN={empty}" not in done.stdout, "nothing was built"
