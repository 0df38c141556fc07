"""What the demo shows of the cluster's access, as a user would check it: the manifests kubectl applied,
``eks-capture doctor`` as the operator, and after the teardown, kubectl as the teardown's and the
trigger's own identities (their roles' EKS tokens, default-deny RBAC: the stack's grants are the only ones).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from eks_capture.kube.eks import generate_token
from eks_capture_cli import run
from localcloud.access import function_session, kubectl_as
from localcloud.cloud import LocalCloud
from localcloud.provision import describe_stack

Say = Callable[[str], None]


def show_setup(cloud: LocalCloud, out: Path, say: Say) -> None:
    """The manifests' ``kubectl apply`` lines, the operator's kubeconfig, then the doctor: all green, or the
    demo stops here (a red line is a set-up the captures would fail on)."""
    say(f"$ eks-capture manifests --stack {cloud.stack.name} | kubectl apply -f -")
    for line in cloud.applied.strip().splitlines():
        say(f"  {line}")
    token = generate_token(cloud.kube.cluster_name).value
    kubeconfig = cloud.kube.write_kubeconfig(out / "kubeconfig", token)
    say(f"kubeconfig of the cluster's creator (a 15-minute EKS token): {kubeconfig}")
    describe_stack(cloud.stack, cloud.stack.name)
    os.environ.update(cloud.kube.env())
    args = ["doctor", "-c", cloud.kube.cluster_name, "--stack", cloud.stack.name]
    say(f"$ eks-capture {' '.join(args)}")
    code = run(args)
    if code != 0:
        raise RuntimeError(f"eks-capture doctor exited {code}: the cluster is not set up as a capture needs")


def show_teardown_view(cloud: LocalCloud, say: Say) -> bool:
    """kubectl as the teardown function: nothing of the capture left, and it may not create a Job (the
    trigger may). True when the cluster answers all three as it must."""
    namespace = cloud.stack.values["CaptureNamespace"]
    teardown = kubectl_as(cloud.kube, function_session(cloud.stack, "TeardownFunction"))
    trigger = kubectl_as(cloud.kube, function_session(cloud.stack, "TriggerFunction"))
    say(f"$ kubectl get jobs,pods -n {namespace}    # as the teardown function (TeardownRole's token)")
    listed = teardown.run("get", "jobs,pods", "-n", namespace)
    for line in (listed.stdout + listed.stderr).strip().splitlines():
        say(f"  {line}")
    answers = {}
    for who, kubectl in (("teardown", teardown), ("trigger", trigger)):
        asked = kubectl.run("auth", "can-i", "create", "jobs.batch", "-n", namespace)
        answers[who] = (asked.stdout.strip() or asked.stderr.strip()).splitlines()[-1]
        say(f"$ kubectl auth can-i create jobs.batch -n {namespace}    # as the {who}: {answers[who]}")
    nothing_left = listed.returncode == 0 and not listed.stdout.strip()
    return nothing_left and answers == {"teardown": "no", "trigger": "yes"}
