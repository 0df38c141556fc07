"""Creates a stack's stateful resources in moto from their template properties, as CloudFormation would."""

from __future__ import annotations

import json
from typing import Any

import boto3

from localcloud.template import Stack, TemplateError


def _bucket(stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=stack.region)
    name = stack.name_of(logical_id)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": stack.region})  # type: ignore[typeddict-item]
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                    for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    notification = props.get("NotificationConfiguration", {})
    if notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _table(stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=stack.region)
    name = stack.name_of(logical_id)
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    dynamodb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )


def _topic(stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
    boto3.client("sns", region_name=stack.region).create_topic(Name=stack.name_of(logical_id))


def _queue(stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
    boto3.client("sqs", region_name=stack.region).create_queue(QueueName=stack.name_of(logical_id))


def _event_bus(stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
    boto3.client("events", region_name=stack.region).create_event_bus(Name=stack.name_of(logical_id))


_CREATORS = {
    "AWS::S3::Bucket": _bucket,
    "AWS::DynamoDB::Table": _table,
    "AWS::SNS::Topic": _topic,
    "AWS::SQS::Queue": _queue,
    "AWS::Events::EventBus": _event_bus,
}

# Resources that exist only in AWS's control plane (IAM, layers, dashboards, EKS associations) have no
# behaviour the local cloud runs, so they are read (to catch broken references) but not created.
_READ_ONLY = (
    "AWS::Serverless::",
    "AWS::IAM::",
    "AWS::EKS::",
    "AWS::CloudWatch::",
    "AWS::Lambda::",
    "AWS::Events::Rule",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::Logs::",
)


def provision(stack: Stack) -> None:
    """Create every stateful resource of ``stack`` in the account boto3 points at."""
    for logical_id, resource in stack.resources.items():
        if "Condition" in resource and not stack.condition(resource["Condition"]):
            continue
        kind = resource["Type"]
        props = stack.resolve(resource.get("Properties", {}))
        creator = _CREATORS.get(kind)
        if creator is not None:
            creator(stack, logical_id, props)
        elif not kind.startswith(_READ_ONLY):
            raise TemplateError(f"{logical_id}: the local cloud does not model {kind}")


def provision_cluster(stack: Stack, cluster: str) -> None:
    """Create what ``stack`` declares inside EKS for ``cluster`` (which must exist, as CloudFormation needs
    it): its access entries with their access policies, and its Pod Identity associations."""
    eks = boto3.client("eks", region_name=stack.region)
    for kind in ("AWS::EKS::AccessEntry", "AWS::EKS::PodIdentityAssociation"):
        for resource in stack.resources_of_type(kind).values():
            if "Condition" in resource and not stack.condition(resource["Condition"]):
                continue
            props = stack.resolve(resource["Properties"])
            if props["ClusterName"] != cluster:
                continue
            if kind == "AWS::EKS::PodIdentityAssociation":
                eks.create_pod_identity_association(
                    clusterName=cluster,
                    namespace=props["Namespace"],
                    serviceAccount=props["ServiceAccount"],
                    roleArn=props["RoleArn"],
                )
                continue
            _access_entry(eks, cluster, props)


def _access_entry(eks: Any, cluster: str, props: dict[str, Any]) -> None:
    entry = {
        "clusterName": cluster,
        "principalArn": props["PrincipalArn"],
        "type": props.get("Type", "STANDARD"),
    }
    if props.get("KubernetesGroups"):
        entry["kubernetesGroups"] = props["KubernetesGroups"]
    if props.get("Username"):
        entry["username"] = props["Username"]
    eks.create_access_entry(**entry)
    for association in props.get("AccessPolicies") or []:
        scope = association["AccessScope"]
        eks.associate_access_policy(
            clusterName=cluster,
            principalArn=props["PrincipalArn"],
            policyArn=association["PolicyArn"],
            accessScope={
                "type": scope["Type"],
                **({"namespaces": scope["Namespaces"]} if "Namespaces" in scope else {}),
            },
        )


def describe_stack(stack: Stack, name: str) -> None:
    """The deployed stack as `aws cloudformation describe-stacks` shows it: its outputs and the parameters the
    CLI reads (``--stack``); its resources are the local cloud's, so the CloudFormation stack holds none."""
    outputs = {
        key: {"Value": stack.output(key)}
        for key, output in stack.template["Outputs"].items()
        if "Condition" not in output or stack.condition(output["Condition"])
    }
    names = ("CaptureNamespace", "CaptureServiceAccount", "PodCredentials")
    template = {
        "Parameters": {key: {"Type": "String"} for key in names},
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": outputs,
    }
    boto3.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": n, "ParameterValue": str(stack.values[n])} for n in names],
    )
