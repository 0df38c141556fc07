"""``eks-capture doctor -c CLUSTER [--stack NAME]``: before the incident, everything a capture will need.

One line per check, green or red, each red one with the command that fixes it; the exit code is 1 when
anything is red. It reads with the operator's own credentials (an EKS token for the cluster, as the other
commands) and asks the cluster's own authorizer (SubjectAccessReview) what each function's identity may do.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eks_capture_cli.browse import ClusterOption
from eks_capture_cli.failures import EXIT_FAILED, one_line_errors
from eks_capture_cli.stacks import BucketOption, StackOption

RoleOption = Annotated[str | None, typer.Option(help="IAM role ARN (not --stack's).")]


@one_line_errors
def doctor(
    cluster: ClusterOption,
    stack: StackOption = None,
    bucket: BucketOption = None,
    trigger_role: RoleOption = None,
    teardown_role: RoleOption = None,
    pod_role: RoleOption = None,
    namespace: Annotated[str | None, typer.Option(help="Capture namespace (not the stack's).")] = None,
    service_account: Annotated[
        str | None, typer.Option(help="Capture service account (not the stack's).")
    ] = None,
) -> None:
    """Check before the incident that a capture can run: access, permissions, namespace, quotas, credentials.

    Example: eks-capture doctor -c shop-prod --stack eks-capture
    """
    from rich.console import Console

    from eks_capture_cli.preflight import render, run_checks, targets_of  # the Kubernetes client: only here

    targets = targets_of(
        cluster, stack, bucket, trigger_role, teardown_role, pod_role, namespace, service_account
    )
    lines = run_checks(targets)
    render(lines, Console(soft_wrap=True, highlight=False))
    if any(line.red for line in lines):
        raise typer.Exit(EXIT_FAILED)
