"""Which name an address gets from a stored context when several objects claim it (pure, no cloud)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eks_capture.captures.context import (
    ClusterContext,
    NodeEntry,
    PodEntry,
    ServiceEntry,
    decode,
    encode,
    names_from_document,
)
from eks_capture_cli.analyze import load_context

IP = "10.0.3.7"
TAKEN = datetime(2026, 11, 25, 3, 12, tzinfo=UTC)


def _pod(name: str, phase: str = "Running", host_network: bool = False) -> PodEntry:
    return PodEntry(namespace="payments", name=name, ips=[IP], phase=phase, host_network=host_network)


def _context(
    *, pods: Sequence[PodEntry] = (), nodes: Sequence[NodeEntry] = (), services: Sequence[ServiceEntry] = ()
) -> ClusterContext:
    return ClusterContext(
        cluster="shop-prod", taken_at=TAKEN, pods=list(pods), nodes=list(nodes), services=list(services)
    )


@pytest.mark.parametrize(
    ("context", "name"),
    [
        pytest.param(_context(pods=[_pod("api-1")]), "payments/api-1", id="a-running-pod"),
        pytest.param(
            _context(pods=[_pod("api-new"), _pod("job-old", phase="Succeeded")]),
            "payments/api-new",
            id="the-running-pod-over-a-finished-one-that-held-the-ip-before",
        ),
        pytest.param(
            _context(pods=[_pod("job-old", phase="Failed")]), "payments/job-old", id="a-finished-pod-alone"
        ),
        pytest.param(
            _context(pods=[_pod("api-1"), _pod("web-2")]),
            "payments/api-1 or payments/web-2",
            id="an-address-reused-during-a-long-capture-names-both-holders",
        ),
        pytest.param(
            _context(
                pods=[_pod("agent", host_network=True)], nodes=[NodeEntry(name="ip-10-0-3-7", ips=[IP])]
            ),
            "node ip-10-0-3-7",
            id="a-host-network-pod-leaves-the-address-to-its-node",
        ),
        pytest.param(
            _context(
                pods=[_pod("api-1")],
                services=[ServiceEntry(namespace="payments", name="api", cluster_ips=[IP])],
            ),
            "payments/api service",
            id="a-service-ip-names-the-service",
        ),
        pytest.param(
            _context(pods=[_pod("agent", host_network=True)]),
            None,
            id="a-host-network-pod-alone-names-nothing",
        ),
    ],
)
def test_an_address_gets_the_name_of_who_held_it_during_the_capture(
    context: ClusterContext, name: str | None
) -> None:
    assert context.names().get(IP) == name


def test_the_stored_form_reads_back_equal() -> None:
    context = _context(
        pods=[_pod("api-1")], nodes=[NodeEntry(name="n", instance_id="i-0a1b2c3d", ips=["10.1.1.1"])]
    )

    assert decode(encode(context)) == context


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"cluster": "c", "taken_at": "not a time"}, id="a-context-with-a-bad-time"),
        pytest.param([IP], id="a-list"),
        pytest.param({IP: 7}, id="a-mapping-to-non-names"),
    ],
)
def test_documents_that_are_neither_a_context_nor_a_name_map_are_refused(document: object) -> None:
    with pytest.raises(ValueError, match=r"context|mapping"):
        names_from_document(document)


@pytest.mark.parametrize("compress", [gzip.compress, bytes], ids=["gzip", "plain"])
def test_the_cli_reads_a_stored_context_or_a_plain_map_alike(tmp_path: Path, compress: object) -> None:
    stored, plain = tmp_path / "context.json.gz", tmp_path / "names.json"
    context = _context(pods=[_pod("api-1")])
    stored.write_bytes(compress(context.model_dump_json().encode()))  # type: ignore[operator]
    plain.write_text(json.dumps({IP: "payments/api-1"}))

    assert load_context(stored) == load_context(plain) == context.names()
