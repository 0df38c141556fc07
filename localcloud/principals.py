"""IAM principals as EKS names them; free of imports so both moto's process and the emulator can use it."""

from __future__ import annotations


def canonical_arn(arn: str) -> str:
    """An assumed-role session ARN as its role ARN (``sts::A:assumed-role/R/S`` -> ``iam::A:role/R``)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
    return arn
