"""A capture pod's own AWS credentials, in the local cloud with IAM enforced: the transformed template's
upload policy on a role, the role assumed through STS, and the agent's own upload calls over HTTP.

moto's S3 evaluates identity policies against the object's ARN (explicit Deny first), so it can prove
that the pod's credentials write their node files and cannot overwrite a report or a context document.
It cannot prove the policy's ``NotResource`` Deny (keys outside ``captures/<cluster>/``): moto ignores
NotResource and counts such a Deny as an Allow; tests/integration/test_security_template.py decides those
keys with the IAM evaluator of tests/fixtures/iam_policies.py instead.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from eks_capture.captures.context import CONTEXT_NAME
from eks_capture.report.building import REPORT_NAME
from eks_capture_agent.compression import Codec, Compression
from eks_capture_agent.manifest import MANIFEST
from eks_capture_agent.s3client import put_bytes, put_file
from eks_capture_agent.spool import SNAPSHOT_BEFORE
from localcloud.aws import ACCOUNT_ID, REGION, MotoServer, moto_server
from tests.sam_transform import CLUSTER, deployed, properties

CAPTURE = "cap-20261125T100213Z-0a1b2c3d"
NODE_PREFIX = f"captures/{CLUSTER}/{CAPTURE}/ip-10-0-1-23.ec2.internal/"
REPORT = f"captures/{CLUSTER}/{CAPTURE}/{REPORT_NAME}"
CONTEXT = f"captures/{CLUSTER}/{CAPTURE}/{CONTEXT_NAME}"
ORIGINAL = b"<html>the report the report function wrote</html>"
TRUST_THIS_ACCOUNT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}],
}


def _client(server: MotoServer, service: str, key_id: str, secret: str, token: str | None = None) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]  # boto3-stubs types each service name apart
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def _enforce_iam(server: MotoServer) -> None:
    """From now on every request to this moto server is authenticated and authorized."""
    request = urllib.request.Request(
        f"{server.endpoint_url}/moto-api/reset-auth",
        data=b"0",
        headers={"Content-Type": "text/plain"},  # a form body would not reach moto's request.data
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """A bucket holding a capture's report and context; the pod's and a reader's credentials; IAM on."""
    stack = deployed()
    bucket = stack.name_of("CaptureBucket")
    upload_policy = properties(stack, "CaptureUploadPolicyshopprod")["PolicyDocument"]
    with moto_server() as server:
        env = server.env()
        root = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
        s3, iam, sts = (_client(server, name, *root) for name in ("s3", "iam", "sts"))
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=bucket, Key=REPORT, Body=ORIGINAL)
        s3.put_object(Bucket=bucket, Key=CONTEXT, Body=b"context")
        policy = iam.create_policy(PolicyName="upload", PolicyDocument=json.dumps(upload_policy))["Policy"]
        iam.create_role(RoleName="capture-pod", AssumeRolePolicyDocument=json.dumps(TRUST_THIS_ACCOUNT))
        iam.attach_role_policy(RoleName="capture-pod", PolicyArn=policy["Arn"])
        iam.create_user(UserName="reader")
        reading = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        iam.put_user_policy(
            UserName="reader",
            PolicyName="read",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [reading]}),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        assumed = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/capture-pod", RoleSessionName="pod"
        )
        pod = assumed["Credentials"]
        _enforce_iam(server)
        yield {
            "bucket": bucket,
            "pod": _client(server, "s3", pod["AccessKeyId"], pod["SecretAccessKey"], pod["SessionToken"]),
            "reader": _client(server, "s3", key["AccessKeyId"], key["SecretAccessKey"]),
        }


def test_the_pods_credentials_upload_and_confirm_its_node_files(
    world: dict[str, Any], tmp_path: Path
) -> None:
    pcap = tmp_path / "20261125T100213Z.pcap"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)
    compression = Compression(Codec.ZSTD, 3)

    stored = put_file(world["pod"], world["bucket"], f"{NODE_PREFIX}x-00000.pcap.zst", pcap, compression, {})
    put_bytes(world["pod"], world["bucket"], f"{NODE_PREFIX}{SNAPSHOT_BEFORE}", b"{}", "application/json")
    put_bytes(world["pod"], world["bucket"], f"{NODE_PREFIX}{MANIFEST}", b"{}", "application/json")

    assert stored.stored_bytes > 0


def test_the_pods_credentials_cannot_overwrite_a_report_or_a_context(world: dict[str, Any]) -> None:
    for key in (REPORT, CONTEXT):
        with pytest.raises(ClientError) as refused:
            put_bytes(world["pod"], world["bucket"], key, b"<script>phish()</script>", "text/html")
        assert refused.value.response["Error"]["Code"] == "AccessDenied", key
        with pytest.raises(ClientError, match="AccessDenied"):
            world["pod"].get_object(Bucket=world["bucket"], Key=key)

    report = world["reader"].get_object(Bucket=world["bucket"], Key=REPORT)["Body"].read()
    assert report == ORIGINAL
