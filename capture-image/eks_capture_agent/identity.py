"""Who the agent works for, from the pod's environment (downward API and the Job's env)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

CAPTURE_ID = re.compile(r"^cap-\d{8}T\d{6}Z-[0-9a-f]{8}$")
CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,99}$")
NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


class SettingError(ValueError):
    """A command-line flag or environment variable the agent cannot work with; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Identity:
    """The capture, cluster, node and instance every log line, object and manifest is labelled with."""

    capture_id: str
    cluster: str
    node: str
    instance_id: str | None

    def log_keys(self) -> dict[str, str]:
        keys = {"capture_id": self.capture_id, "cluster": self.cluster, "node": self.node}
        return keys | ({"instance_id": self.instance_id} if self.instance_id else {})


def _required(environ: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = environ.get(name, "")
    if not value:
        raise SettingError(name, "is not set")
    if not pattern.match(value):
        raise SettingError(name, f"{value!r} does not match {pattern.pattern}")
    return value


def identity_from_env(environ: Mapping[str, str]) -> Identity:
    """CAPTURE_ID, CLUSTER_NAME and NODE_NAME are required; INSTANCE_ID is optional."""
    instance_id = environ.get("INSTANCE_ID") or None
    if instance_id is not None and not INSTANCE_ID.match(instance_id):
        raise SettingError("INSTANCE_ID", f"{instance_id!r} does not match {INSTANCE_ID.pattern}")
    return Identity(
        capture_id=_required(environ, "CAPTURE_ID", CAPTURE_ID),
        cluster=_required(environ, "CLUSTER_NAME", CLUSTER_NAME),
        node=_required(environ, "NODE_NAME", NODE_NAME),
        instance_id=instance_id,
    )
