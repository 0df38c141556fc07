"""Where the deployed stack keeps captures: bucket, index table and event bus, from options or the stack."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import ClientError

from eks_capture_cli.failures import CommandError

OUTPUT_NAMES = {
    "bucket": "CaptureBucketName",
    "table": "CaptureTableName",
    "bus": "CaptureEventBusName",
}
ENV_NAMES = {"bucket": "EKS_CAPTURE_BUCKET", "table": "EKS_CAPTURE_TABLE", "bus": "EKS_CAPTURE_BUS"}

StackOption = Annotated[
    str | None,
    typer.Option("--stack", envvar="EKS_CAPTURE_STACK", help="CloudFormation stack to read the names from."),
]
BucketOption = Annotated[
    str | None, typer.Option("--bucket", envvar="EKS_CAPTURE_BUCKET", help="Capture bucket (not --stack's).")
]
TableOption = Annotated[
    str | None, typer.Option("--table", envvar="EKS_CAPTURE_TABLE", help="Index table (not --stack's).")
]
BusOption = Annotated[
    str | None, typer.Option("--bus", envvar="EKS_CAPTURE_BUS", help="Event bus (not --stack's).")
]


def describe_stack(stack: str, client: Any = None) -> dict[str, Any]:
    """The stack as CloudFormation DescribeStacks answers (outputs, parameters)."""
    cloudformation = client or boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(error):
            raise CommandError(f"stack {stack} not found in this account and region", exit_code=3) from None
        raise
    return dict(stacks[0]) if stacks else {}


def stack_outputs(stack: str, client: Any = None) -> dict[str, str]:
    """The stack's outputs by key (CloudFormation DescribeStacks)."""
    outputs = describe_stack(stack, client).get("Outputs", [])
    return {output["OutputKey"]: output["OutputValue"] for output in outputs}


def stack_parameters(stack: str, client: Any = None) -> dict[str, str]:
    """The stack's parameter values by key (CloudFormation DescribeStacks)."""
    parameters = describe_stack(stack, client).get("Parameters", [])
    return {p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue", "") for p in parameters}


@dataclass
class StackRef:
    """The names a command needs, resolved lazily: explicit options first, then the stack's outputs."""

    stack: str | None = None
    bucket: str | None = None
    table: str | None = None
    bus: str | None = None
    _outputs: dict[str, str] | None = None

    def _resolve(self, what: str) -> str:
        explicit: str | None = getattr(self, what)
        if explicit:
            return explicit
        if self.stack:
            if self._outputs is None:
                self._outputs = stack_outputs(self.stack)
            value = self._outputs.get(OUTPUT_NAMES[what])
            if value:
                return value
            raise CommandError(f"stack {self.stack} has no output {OUTPUT_NAMES[what]}")
        raise CommandError(
            f"no capture {what} given: pass --stack NAME, or --{what} / {ENV_NAMES[what]}", exit_code=2
        )

    @property
    def bucket_name(self) -> str:
        """The capture bucket."""
        return self._resolve("bucket")

    @property
    def table_name(self) -> str:
        """The capture index table."""
        return self._resolve("table")

    @property
    def bus_name(self) -> str:
        """The event bus taking Start/Stop Capture."""
        return self._resolve("bus")


def region() -> str:
    """The region the commands talk to (the standard chain's, so AWS_REGION / profiles apply)."""
    return boto3.session.Session().region_name or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
