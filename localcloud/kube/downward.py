"""The downward API: env values from pod fields, and volume files written atomically like the kubelet's."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def field_value(pod: Obj, path: str) -> str:
    """A ``fieldRef.fieldPath`` of the pod, as the kubelet renders it."""
    metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    if match := _SUBSCRIPT.match(path):
        return str((metadata.get(match[1]) or {}).get(match[2], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        return render_map(metadata.get(path.split(".")[1]) or {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
    }
    return str(simple.get(path, ""))


def render_map(values: Mapping[str, str]) -> str:
    """``key="value"`` lines, sorted, values quoted as Go's %q does."""
    return "\n".join(
        f"{key}={json.dumps(str(value), ensure_ascii=False)}" for key, value in sorted(values.items())
    )


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` references to earlier variables, as in command, args and env values."""
    return _REFERENCE.sub(lambda m: env.get(m[1], m[0]), text)


def container_env(container: Obj, pod: Obj, base: Mapping[str, str]) -> dict[str, str]:
    """The container's environment: ``base``, then its ``env`` in order (values, fieldRefs, references)."""
    env = dict(base)
    for variable in container.get("env") or []:
        source = variable.get("valueFrom") or {}
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "value" in variable:
            value = expand(str(variable["value"]), env)
        else:
            value = ""
        env[variable["name"]] = value
    return env


def volume_files(volume: Obj, pod: Obj) -> dict[str, str]:
    """The files of a ``downwardAPI`` volume: relative path -> content."""
    return {
        item["path"]: field_value(pod, item["fieldRef"]["fieldPath"])
        for item in volume["downwardAPI"].get("items") or []
        if "fieldRef" in item
    }


def write_atomically(directory: Path, files: Mapping[str, str]) -> None:
    """The kubelet's AtomicWriter: a timestamped dir, ``..data`` swapped by rename, names as symlinks."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(time.time_ns() % 10**9)
    payload = directory / stamp
    payload.mkdir()
    for relative, content in files.items():
        target = payload / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    data_link = directory / "..data"
    previous = os.readlink(data_link) if data_link.is_symlink() else None
    temporary = directory / "..data_tmp"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(stamp)
    os.replace(temporary, data_link)
    for top in {relative.split("/", 1)[0] for relative in files}:
        visible = directory / top
        if not visible.is_symlink():
            visible.symlink_to(f"..data/{top}")
    if previous and previous != stamp:
        shutil.rmtree(directory / previous, ignore_errors=True)


def substitute_paths(text: str, mounts: list[tuple[str, str]]) -> str:
    """Replace each mount path (as a whole path component) by its local directory."""
    if not mounts:
        return text
    # One pass over the text: a local directory put in for one mount (say /tmp/kube-x/.../spool) must not
    # be matched again by another mount path (say /tmp).
    locals_by_path = {mount_path.rstrip("/"): local for mount_path, local in mounts}
    alternatives = "|".join(re.escape(p) for p in sorted(locals_by_path, key=len, reverse=True))
    pattern = r"(?<![\w.-])(" + alternatives + r")(?![\w.-])"
    return re.sub(pattern, lambda match: locals_by_path[match.group(1)], text)
