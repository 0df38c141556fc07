"""ResourceQuota admission for pods: counts, requests and limits, refused in the real plugin's words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from localcloud.kube.quota import format_quantity, parse_quantity, quota_refusal


def _quota(name: str, **hard: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"hard": hard}}


def _pod(*containers: tuple[str, dict[str, str], dict[str, str]], phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {"name": name, "resources": {"requests": requests, "limits": limits}}
                for name, requests, limits in containers
            ]
        },
        "status": {"phase": phase},
    }


SMALL = _pod(("app", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "500m", "memory": "256Mi"}))


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", Decimal("0.25")), ("2", Decimal(2)), ("64Mi", Decimal(64 * 2**20)), ("1e3", Decimal(1000))],
)
def test_quantities_parse_as_the_api_reads_them(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("resource", "value", "text"),
    [
        ("requests.cpu", Decimal("0.25"), "250m"),
        ("limits.cpu", Decimal(2), "2"),
        ("requests.memory", Decimal(128 * 2**20), "128Mi"),
        ("limits.memory", Decimal(2**30), "1Gi"),
        ("pods", Decimal(3), "3"),
    ],
)
def test_quantities_print_in_canonical_form(resource: str, value: Decimal, text: str) -> None:
    assert format_quantity(resource, value) == text


@pytest.mark.parametrize(
    ("quotas", "pods", "new", "expected"),
    [
        ([], [], SMALL, None),
        ([_quota("pods", pods="2")], [SMALL], SMALL, None),
        (
            [_quota("capture", pods="1")],
            [SMALL],
            SMALL,
            "exceeded quota: capture, requested: pods=1, used: pods=1, limited: pods=1",
        ),
        ([_quota("capture", pods="1")], [_pod(("app", {}, {}), phase="Succeeded")], SMALL, None),
        (
            [_quota("compute", **{"requests.cpu": "150m", "limits.memory": "1Gi"})],
            [SMALL],
            SMALL,
            "exceeded quota: compute, requested: requests.cpu=100m, used: requests.cpu=100m, "
            "limited: requests.cpu=150m",
        ),
        (
            [_quota("compute", **{"limits.cpu": "2", "limits.memory": "1Gi"})],
            [],
            _pod(("capture", {"cpu": "100m"}, {}), ("upload", {}, {"cpu": "1"})),
            "failed quota: compute: must specify limits.cpu for: capture; limits.memory for: capture,upload",
        ),
        (
            [_quota("a-count", pods="5"), _quota("b-compute", memory="64Mi")],
            [SMALL],
            SMALL,
            "exceeded quota: b-compute, requested: memory=64Mi, used: memory=64Mi, limited: memory=64Mi",
        ),
    ],
)
def test_a_pod_is_refused_only_past_a_hard_limit_or_without_a_constrained_resource(
    quotas: list[dict[str, Any]], pods: list[dict[str, Any]], new: dict[str, Any], expected: str | None
) -> None:
    assert quota_refusal(quotas, pods, new) == expected
