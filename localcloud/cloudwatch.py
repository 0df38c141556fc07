"""CloudWatch alarm state changes as EventBridge events, which moto does not emit by itself.

``set_alarm_state`` changes the alarm in moto, then puts the "CloudWatch Alarm State Change" event
that CloudWatch would send to the default bus, built from the alarm's own configuration.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def _timestamp(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT)[:-3] + "+0000"


def _metric_entry(query: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": query["Id"], "returnData": query.get("ReturnData", True)}
    if "Expression" in query:
        entry["expression"] = query["Expression"]
        entry["label"] = query.get("Label", query["Id"])
    else:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        entry["metricStat"] = {
            "metric": {
                "namespace": metric["Namespace"],
                "name": metric["MetricName"],
                "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
            },
            "period": stat["Period"],
            "stat": stat["Stat"],
        }
    return entry


def _configuration(alarm: dict[str, Any], composite: bool) -> dict[str, Any]:
    configuration: dict[str, Any] = {"description": alarm.get("AlarmDescription", "")}
    if composite:
        configuration["alarmRule"] = alarm["AlarmRule"]
        return configuration
    if alarm.get("Metrics"):
        configuration["metrics"] = [_metric_entry(q) for q in alarm["Metrics"]]
    else:
        configuration["metrics"] = [
            _metric_entry(
                {
                    "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm["AlarmArn"])),
                    "MetricStat": {
                        "Metric": {
                            "Namespace": alarm["Namespace"],
                            "MetricName": alarm["MetricName"],
                            "Dimensions": alarm.get("Dimensions", []),
                        },
                        "Period": alarm["Period"],
                        "Stat": alarm.get("Statistic", alarm.get("ExtendedStatistic", "Average")),
                    },
                }
            )
        ]
    return configuration


def alarm_state_change_event(
    alarm: dict[str, Any], composite: bool, previous: str, state: str, reason: str, now: datetime
) -> dict[str, Any]:
    """The EventBridge event CloudWatch sends for this transition (same fields, same formats)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": alarm["AlarmArn"].split(":")[4],
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": alarm["AlarmArn"].split(":")[3],
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm["AlarmName"],
            "state": {"value": state, "reason": reason, "timestamp": _timestamp(now)},
            "previousState": {
                "value": previous,
                "reason": alarm.get("StateReason", ""),
                "timestamp": _timestamp(now),
            },
            "configuration": _configuration(alarm, composite),
        },
    }


def set_alarm_state(alarm_name: str, state: str, reason: str) -> dict[str, Any]:
    """Move an alarm to ``state`` and emit the state-change event, as CloudWatch does on a change."""
    cloudwatch = boto3.client("cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    metric_alarms, composite_alarms = found.get("MetricAlarms", []), found.get("CompositeAlarms", [])
    if not metric_alarms and not composite_alarms:
        raise LookupError(f"alarm {alarm_name!r} does not exist")
    alarm: dict[str, Any] = dict((metric_alarms or composite_alarms)[0])
    previous = alarm["StateValue"]
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue=state, StateReason=reason)  # type: ignore[arg-type]
    event = alarm_state_change_event(
        alarm, bool(composite_alarms), previous, state, reason, datetime.now(UTC)
    )
    if previous != state:
        boto3.client("events").put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                }
            ]
        )
    return event
