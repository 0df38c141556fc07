"""Render sample capture Jobs to YAML files, for scanners (Checkov) that read manifests from a directory."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.manifests.job import CaptureSpec, capture_job, job_name
from eks_capture.kube.nodes import NodeInfo, Taint
from eks_capture.settings import Settings

SAMPLE_IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture-agent@sha256:" + "0" * 64
SAMPLE_ENV = {
    "CAPTURE_BUCKET": "eks-capture-123456789012-us-west-2",
    "CAPTURE_TABLE": "eks-capture-index",
    "CAPTURE_IMAGE": SAMPLE_IMAGE,
    "AWS_REGION": "us-west-2",
}
SAMPLE_NODES = (
    NodeInfo("ip-192-168-12-34.us-west-2.compute.internal", "i-0a1b2c3d4e5f60718", "us-west-2a"),
    NodeInfo(
        "ip-192-168-40-7.us-west-2.compute.internal",
        "i-0fedcba9876543210",
        "us-west-2b",
        taints=(Taint("dedicated", "NoSchedule", "ingress"), Taint("gpu", "NoExecute")),
    ),
)


def render(directory: Path) -> list[Path]:
    """Write one Job per sample node and filter choice into ``directory``; return the files."""
    settings = Settings.from_env(SAMPLE_ENV)
    started = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    written = []
    for number, capture_filter in enumerate(("tcp port 443", None)):
        capture_id = capture_id_for_event(f"sample-{number}", started)
        options = CaptureOptions(duration_seconds=300, snaplen=262144, filter=capture_filter)
        spec = CaptureSpec(capture_id, "shop-prod", options, "sample render for scanners", started)
        for node in SAMPLE_NODES:
            path = directory / f"{job_name(capture_id, node.name)}.yaml"
            path.write_text(yaml.safe_dump(capture_job(spec, node, settings), sort_keys=False))
            written.append(path)
    return written


def main() -> None:
    """Render into the directory named by the first argument."""
    for path in render(Path(sys.argv[1])):
        print(path)


if __name__ == "__main__":
    main()
