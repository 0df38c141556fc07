"""``eks-capture recorder enable|disable|status``: the flight recorder, from the terminal.

enable and disable send the same Start/Stop Recorder events as any operator (validated here first, so a
bad request fails locally with the trigger's message); status asks the cluster itself which recorders
can serve a window now, through the same EKS access the functions use.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from eks_capture_cli.browse import ClusterOption, JsonFlag
from eks_capture_cli.failures import one_line_errors
from eks_capture_cli.requests import label_pairs, operator_name, send
from eks_capture_cli.stacks import BusOption, StackOption, StackRef

app = typer.Typer(help="The flight recorder: keep the recent past on chosen nodes.", no_args_is_help=True)
NamespaceOption = Annotated[str, typer.Option(help="The capture namespace.")]


@app.command("enable")
@one_line_errors
def enable(
    cluster: ClusterOption,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why the recent past is worth keeping.")],
    node_label: Annotated[
        list[str] | None,
        typer.Option(help="Nodes with this label, key=value (repeatable; none: every node)."),
    ] = None,
    bpf_filter: Annotated[str | None, typer.Option("--filter", help="BPF: 'tcp or udp port 53'.")] = None,
    snaplen: Annotated[
        int | None, typer.Option(help="Bytes kept per packet (default: headers only).")
    ] = None,
    ring_minutes: Annotated[int | None, typer.Option(help="Minutes of the past each node keeps.")] = None,
    budget_megabytes: Annotated[int | None, typer.Option(help="Disk each node may use for its ring.")] = None,
    stack: StackOption = None,
    bus: BusOption = None,
) -> None:
    """Run the recorder on the chosen nodes (or change its settings).

    Example: eks-capture recorder enable -c shop-prod --node-label eks.amazonaws.com/nodegroup=ingress
    --ring-minutes 10 -r 'intermittent resets, INC-4127'
    """
    detail: dict[str, Any] = {"cluster": cluster, "reason": reason}
    labels = label_pairs(node_label or [], "--node-label")
    if labels:
        detail["node_selector"] = {"matchLabels": labels}
    for key, value in (
        ("filter", bpf_filter),
        ("snaplen", snaplen),
        ("ring_minutes", ring_minutes),
        ("budget_megabytes", budget_megabytes),
        ("requested_by", operator_name()),
    ):
        if value is not None:
            detail[key] = value
    send(StackRef(stack=stack, bus=bus), "Start Recorder", detail, datetime.now(UTC).replace(microsecond=0))
    typer.echo(f"recorder requested on {cluster}")


@app.command("disable")
@one_line_errors
def disable(
    cluster: ClusterOption,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why it stops.")] = None,
    stack: StackOption = None,
    bus: BusOption = None,
) -> None:
    """Stop the recorder on every node of the cluster (its rings are discarded).

    Example: eks-capture recorder disable -c shop-prod -r 'incident closed'
    """
    detail: dict[str, Any] = {"cluster": cluster}
    if reason:
        detail["reason"] = reason
    send(StackRef(stack=stack, bus=bus), "Stop Recorder", detail, datetime.now(UTC).replace(microsecond=0))
    typer.echo(f"recorder stop requested on {cluster}")


@app.command("status")
@one_line_errors
def status(
    cluster: ClusterOption, namespace: NamespaceOption = "eks-capture", as_json: JsonFlag = False
) -> None:
    """Which nodes have a recorder that can serve a window now, how far back, and what ails the others.

    Example: eks-capture recorder status -c shop-prod
    """
    from eks_capture.captures.recorder import healthy_recorders, recorder_pods, unhealthy_recorders
    from eks_capture.kube.calls import (
        Cluster,  # the Kubernetes client: only here, not on every command's start
    )

    pods = recorder_pods(Cluster(cluster), namespace)
    healthy = healthy_recorders(pods)
    broken = unhealthy_recorders(pods)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "healthy": {
                        node: {"pod": r.name, "ring_seconds": r.ring_seconds} for node, r in healthy.items()
                    },
                    "unhealthy": broken,
                },
                indent=2,
            )
        )
        return
    if not pods:
        typer.echo(f"no recorder runs in {cluster}")
    for node, recorder in sorted(healthy.items()):
        typer.echo(f"{node}: recording ({recorder.name}, ring {recorder.ring_seconds} s)")
    for pod, why in sorted(broken.items()):
        typer.echo(f"{pod}: cannot serve a window: {why}")
