"""``start`` and ``stop`` put the manual events on the stack's bus; the deployed trigger takes them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from eks_capture.errors import CaptureRejected
from eks_capture.events.models import parse_event
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession
from eks_capture_cli.catalog import Catalog
from eks_capture_cli.failures import CommandError
from eks_capture_cli.follow import follow
from eks_capture_cli.requests import envelope, start_detail
from localcloud.kube import KubeEmulator
from localcloud.router import Router
from localcloud.template import Stack
from tests.fixtures.cli import invoke
from tests.fixtures.stack import stack_outputs

CLUSTER = "shop-prod"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"


def _bus_options(stack: Stack) -> list[str]:
    outputs = stack_outputs(stack)
    return ["--bus", outputs["CaptureEventBusName"], "--table", outputs["CaptureTableName"]]


def test_start_sends_a_request_the_trigger_turns_into_the_printed_capture(
    stack: Stack, shop: KubeEmulator, router: Router
) -> None:
    code, out, err = invoke(
        "start", "-c", CLUSTER, "-n", NODE_A, "-n", NODE_B, "--duration", "60",
        "--filter", "tcp port 443", "-r", "INC-4127 TLS timeouts", *_bus_options(stack),
    )  # fmt: skip

    assert code == 0, err
    capture_id = out.strip()
    [invocation] = [i for i in router.drain() if i.function == "TriggerFunction"]
    assert invocation.error is None, invocation.error
    session = CaptureStore(stack_outputs(stack)["CaptureTableName"]).get_session(capture_id)
    assert session is not None
    assert sorted(session.nodes) == [NODE_A, NODE_B]
    assert (session.filter, session.duration_seconds) == ("tcp port 443", 60)
    assert session.trigger.reason == "INC-4127 TLS timeouts"


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            ["--all", "-n", NODE_A],
            {"targets": {"nodes": [NODE_A], "all": True}},
            id="all-with-other-targets",
        ),
        pytest.param(["-n", NODE_A, "--filter", "port 53; ls"], {"filter": "port 53; ls"}, id="filter"),
        pytest.param(["-n", NODE_A, "--duration", "1"], {"duration_seconds": 1}, id="duration"),
        pytest.param(["-n", "Not_A_Node"], {"targets": {"nodes": ["Not_A_Node"]}}, id="node-name"),
    ],
)
def test_a_bad_request_fails_locally_with_the_triggers_message_and_sends_nothing(
    stack: Stack, router: Router, args: list[str], detail: dict[str, object]
) -> None:
    request = {"cluster": CLUSTER, "targets": {"nodes": [NODE_A]}, "reason": "why", **detail}
    with pytest.raises(CaptureRejected) as rejected:
        parse_event(envelope("Start Capture", request, datetime.now(UTC)))

    code, out, err = invoke("start", "-c", CLUSTER, "-r", "why", *args, *_bus_options(stack))

    assert code == 2
    assert out == ""
    assert rejected.value.message in err
    assert len(err.strip().splitlines()) == 1
    assert router.drain() == []


def test_stop_sends_stop_capture_for_the_id(stack: Stack, router: Router) -> None:
    capture_id = "cap-20261125T031200Z-0a1b2c3d"

    code, _, err = invoke("stop", capture_id, "-r", "got what we needed", *_bus_options(stack)[:2])

    assert code == 0, err
    [invocation] = router.drain()
    assert invocation.function == "TriggerFunction"
    assert invocation.event["detail-type"] == "Stop Capture"
    assert invocation.event["detail"]["capture_id"] == capture_id
    assert invocation.event["detail"]["reason"] == "got what we needed"


def test_stop_refuses_a_malformed_id_before_sending(stack: Stack, router: Router) -> None:
    code, _, err = invoke("stop", "cap-yesterday", *_bus_options(stack)[:2])

    assert code == 2
    assert "detail.capture_id" in err
    assert router.drain() == []


def _finish_capture(store: CaptureStore, stop: threading.Event) -> None:
    """Play the rest of the system: once the trigger has started the capture, index a file and end it."""
    while not stop.is_set():
        started = [s for s in _sessions(store) if s.status == "running"]
        if started:
            session = started[0]
            node = sorted(session.nodes)[0]
            store.record_file(
                FileRecord(
                    capture_id=session.capture_id,
                    cluster=CLUSTER,
                    node=node,
                    s3_key=f"{session.s3_prefix}{node}/20261125T031200Z-00001.pcap.zst",
                    size=10,
                    packets=42,
                    bytes=4200,
                    first_ts=session.created_at,
                    last_ts=session.created_at,
                )
            )
            store.set_status(session.capture_id, "completed", verdict="all nodes uploaded")
            return
        time.sleep(0.2)


def _sessions(store: CaptureStore) -> list[CaptureSession]:
    return store.sessions(CLUSTER)


def test_start_wait_follows_the_capture_until_it_ends(
    stack: Stack, shop: KubeEmulator, router: Router
) -> None:
    store = CaptureStore(stack_outputs(stack)["CaptureTableName"])
    stop = threading.Event()
    finisher = threading.Thread(target=_finish_capture, args=(store, stop), daemon=True)
    router.start(poll_seconds=0.1)
    finisher.start()
    try:
        code, out, err = invoke(
            "start", "-c", CLUSTER, "-n", NODE_A, "-r", "follow me", "--wait", "--timeout", "60",
            *_bus_options(stack),
        )  # fmt: skip
    finally:
        stop.set()
        finisher.join(timeout=5)

    assert code == 0, err
    capture_id = out.strip()
    session = store.get_session(capture_id)
    assert session is not None
    assert session.status == "completed"
    assert "completed" in err
    assert "1 files, 42 packets" in err
    assert "all nodes uploaded" in err


def test_start_detail_sets_only_the_options_given() -> None:
    detail = start_detail(
        CLUSTER, nodes=[], instance_ids=[], node_labels={}, namespace="shop", pod_labels={"app": "checkout"},
        all_nodes=False, duration=None, bpf_filter=None, snaplen=None, reason="r", requested_by=None,
    )  # fmt: skip

    event = parse_event(envelope("Start Capture", detail, datetime.now(UTC)))

    assert event.detail.targets.pod_selector is not None  # type: ignore[union-attr]
    assert set(detail) == {"cluster", "targets", "reason"}


def test_waiting_gives_up_when_the_trigger_never_records_the_request(stack: Stack) -> None:
    catalog = Catalog(stack_outputs(stack)["CaptureTableName"])

    with pytest.raises(CommandError, match="the trigger has not taken the request"):
        follow(catalog, "cap-20261125T031200Z-0a1b2c3d", timeout=30, poll_seconds=0.1, accept_seconds=0.5)


def test_start_with_a_service_and_its_clients_pods_captures_both_ends(
    stack: Stack, shop: KubeEmulator, router: Router
) -> None:
    code, out, err = invoke(
        "start", "-c", CLUSTER, "--service", "payments/ledger", "--pods", "app.kubernetes.io/name=checkout",
        "--namespace", "payments", "--service-ports", "-r", "ledger timeouts", *_bus_options(stack),
    )  # fmt: skip

    assert code == 0, err
    [invocation] = [i for i in router.drain() if i.function == "TriggerFunction"]
    assert invocation.error is None, invocation.error
    session = CaptureStore(stack_outputs(stack)["CaptureTableName"]).get_session(out.strip())
    assert session is not None
    assert sorted(session.nodes) == sorted([NODE_A, NODE_B, "ip-192-168-77-9.us-west-2.compute.internal"])
    assert session.filter == "port 443 or port 8443"
