"""``eks-capture start`` and ``eks-capture stop``: manual Start/Stop Capture events on the stack's bus.

The event is built and validated with the trigger's own models (``parse_event``) before it is sent, so
a bad request fails here with the message the trigger would log, and nothing is sent.
"""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import boto3
import typer

from eks_capture.events.models import CUSTOM_SOURCE, parse_event
from eks_capture.ids import CaptureId, capture_id_for_event
from eks_capture.times import iso_utc
from eks_capture_cli.browse import ClusterOption
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.failures import CommandError, one_line_errors
from eks_capture_cli.follow import follow
from eks_capture_cli.stacks import BusOption, StackOption, StackRef, TableOption, region

ACCOUNT_PLACEHOLDER = "000000000000"  # EventBridge sets the real account; validation needs a value


def label_pairs(values: list[str], option: str) -> dict[str, str]:
    """``key=value`` arguments as matchLabels (key and value syntax is checked by the event models)."""
    labels: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r} is not key=value", param_hint=option)
        labels[key.strip()] = label.strip()
    return labels


def start_detail(
    cluster: str,
    *,
    nodes: list[str],
    instance_ids: list[str],
    node_labels: dict[str, str],
    namespace: str | None,
    pod_labels: dict[str, str],
    all_nodes: bool,
    duration: int | None,
    service: str | None = None,
    service_ports: bool = False,
    bpf_filter: str | None,
    snaplen: int | None,
    reason: str,
    requested_by: str | None,
) -> dict[str, Any]:
    """The Start Capture ``detail`` as docs/events.md describes it; only the options given are set."""
    targets: dict[str, Any] = {}
    if nodes:
        targets["nodes"] = nodes
    if instance_ids:
        targets["instance_ids"] = instance_ids
    if node_labels:
        targets["node_selector"] = {"matchLabels": node_labels}
    if pod_labels or namespace:
        targets["pod_selector"] = {"namespace": namespace or "default", "matchLabels": pod_labels}
    if service:
        targets["service"] = service
    if service_ports:
        targets["service_ports"] = True
    if all_nodes:
        targets["all"] = True
    detail: dict[str, Any] = {"cluster": cluster, "targets": targets, "reason": reason}
    for key, value in (
        ("duration_seconds", duration),
        ("filter", bpf_filter),
        ("snaplen", snaplen),
        ("requested_by", requested_by),
    ):
        if value is not None:
            detail[key] = value
    return detail


def envelope(detail_type: str, detail: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The event as the trigger will receive it, for local validation."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": CUSTOM_SOURCE,
        "account": ACCOUNT_PLACEHOLDER,
        "time": iso_utc(when),
        "region": region(),
        "resources": [],
        "detail": detail,
    }


def send(ref: StackRef, detail_type: str, detail: dict[str, Any], when: datetime, client: Any = None) -> str:
    """Validate, then put one event on the stack's bus; the id EventBridge gave it."""
    parse_event(envelope(detail_type, detail, when))
    events = client or boto3.client("events")
    response = events.put_events(
        Entries=[
            {
                "EventBusName": ref.bus_name,
                "Source": CUSTOM_SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Time": when,
            }
        ]
    )
    entry = response["Entries"][0]
    if response.get("FailedEntryCount") or "EventId" not in entry:
        why = f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
        raise CommandError(f"EventBridge refused the event: {why}")
    return str(entry["EventId"])


def operator_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@one_line_errors
def start(
    cluster: ClusterOption,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: stored on the capture and its Jobs.")],
    node: Annotated[list[str] | None, typer.Option("--node", "-n", help="Node name (repeatable).")] = None,
    instance_id: Annotated[list[str] | None, typer.Option(help="EC2 instance id (repeatable).")] = None,
    node_label: Annotated[
        list[str] | None, typer.Option(help="Nodes with this label, key=value (repeatable).")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of the pods named by --pod-label.")] = None,
    pod_label: Annotated[
        list[str] | None,
        typer.Option(
            "--pod-label", "--pods", help="Nodes hosting pods with this label, key=value (repeatable)."
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(
            help="namespace/name: the nodes of the Service's ready endpoints (the other end of --pods)."
        ),
    ] = None,
    service_ports: Annotated[
        bool, typer.Option("--service-ports", help="Narrow the filter to the --service's ports.")
    ] = False,
    all_nodes: Annotated[bool, typer.Option("--all", help="Every node (up to the stack's cap).")] = False,
    duration: Annotated[int | None, typer.Option(help="Seconds (default: the stack's).")] = None,
    bpf_filter: Annotated[str | None, typer.Option("--filter", help="BPF: 'tcp port 443'.")] = None,
    snaplen: Annotated[int | None, typer.Option(help="Bytes kept per packet (64-262144).")] = None,
    requested_by: Annotated[str | None, typer.Option(help="Who asks (default: your user name).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the capture live until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 3600.0,
    stack: StackOption = None,
    bus: BusOption = None,
    table: TableOption = None,
) -> None:
    """Start a capture on nodes chosen by name, instance id, label, pod or Service; print its capture id.

    Both ends of a flow in one capture (then eks-capture path): --service for the servers' nodes,
    --pods for the clients'.

    Example: eks-capture start -c shop-prod --pod-label app=checkout --namespace shop
    --duration 120 --filter 'tcp port 443' -r 'INC-4127 TLS timeouts' --wait
    """
    ref = StackRef(stack=stack, bus=bus, table=table)
    when = datetime.now(UTC).replace(microsecond=0)
    detail = start_detail(
        cluster,
        nodes=node or [],
        instance_ids=instance_id or [],
        node_labels=label_pairs(node_label or [], "--node-label"),
        namespace=namespace,
        pod_labels=label_pairs(pod_label or [], "--pod-label"),
        all_nodes=all_nodes,
        duration=duration,
        service=service,
        service_ports=service_ports,
        bpf_filter=bpf_filter,
        snaplen=snaplen,
        reason=reason,
        requested_by=requested_by or operator_name(),
    )
    event_id = send(ref, "Start Capture", detail, when)
    capture_id: CaptureId = capture_id_for_event(event_id, when)
    typer.echo(capture_id)
    if wait:
        session = follow(Catalog(ref.table_name), capture_id, timeout=timeout)
        if session.status in ("failed", "rejected"):
            raise CommandError(f"capture {capture_id} {session.status}: {session.verdict}")


@one_line_errors
def stop(
    capture_id: Annotated[str, typer.Argument(help="Capture id (cap-YYYYmmddTHHMMSSZ-xxxxxxxx).")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why it ends early.")] = None,
    requested_by: Annotated[str | None, typer.Option(help="Who asks (default: your user name).")] = None,
    stack: StackOption = None,
    bus: BusOption = None,
) -> None:
    """End a capture early: its pods upload their last file and stop.

    Example: eks-capture stop cap-20261125T031200Z-0a1b2c3d -r 'got what we needed'
    """
    detail: dict[str, Any] = {"capture_id": capture_id}
    if reason:
        detail["reason"] = reason
    who = requested_by or operator_name()
    if who:
        detail["requested_by"] = who
    ref = StackRef(stack=stack, bus=bus)
    send(ref, "Stop Capture", detail, datetime.now(UTC).replace(microsecond=0))
    typer.echo(f"stop requested for {capture_id}")
