"""Each built function with its layers, unzipped, against Lambda's 250 MB limit (run after `sam build`).

Lambda refuses a function whose code and layers together unzip to more than 262,144,000 bytes; this
fails the build first. Reads .aws-sam/build/template.yaml, where every CodeUri and ContentUri names the
built folder. Prints one row per function; exits 1 when any is over the limit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

LIMIT_BYTES = 262_144_000  # Lambda: function and all its layers, unzipped (250 MiB)
MIB = 2**20
BUILD = Path(__file__).resolve().parent.parent / ".aws-sam" / "build"


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref X) as plain ``{"Ref": X}`` data."""


def _tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``, as Lambda counts an unzipped package."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def function_sizes(build: Path = BUILD) -> dict[str, dict[str, int]]:
    """Function -> {its code folder or layer: bytes}."""
    template = yaml.load((build / "template.yaml").read_text(), Loader=_Loader)
    resources = {k: v for k, v in template["Resources"].items() if isinstance(v, dict)}
    shared = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    sizes: dict[str, dict[str, int]] = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        parts = {"code": folder_bytes(build / resource["Properties"]["CodeUri"])}
        for ref in [*shared, *resource["Properties"].get("Layers", [])]:
            layer = ref["Ref"]
            parts[layer] = folder_bytes(build / resources[layer]["Properties"]["ContentUri"])
        sizes[name] = parts
    return sizes


def main() -> int:
    """Print the table; 1 when a function is over the limit."""
    over = False
    print(f"{'function':<18} {'MiB unzipped':>12}  (limit {LIMIT_BYTES / MIB:.0f} MiB)  parts (MiB)")
    for name, parts in sorted(function_sizes().items()):
        total = sum(parts.values())
        over = over or total > LIMIT_BYTES
        detail = ", ".join(f"{part} {size / MIB:.1f}" for part, size in parts.items())
        print(f"{name:<18} {total / MIB:>12.1f}  {'OVER' if total > LIMIT_BYTES else 'ok':>17}  {detail}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
