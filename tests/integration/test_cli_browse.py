"""``list`` and ``show`` read the capture index of the deployed stack, found by its outputs or by options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from eks_capture.store.catalog import CaptureStore
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger
from eks_capture_cli import run
from localcloud.template import Stack
from tests.fixtures.cli import invoke
from tests.fixtures.stack import stack_outputs

CLUSTER = "shop-prod"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"
T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def options(stack: Stack) -> list[str]:
    outputs = stack_outputs(stack)
    return ["--table", outputs["CaptureTableName"]]


def _session(capture_id: str, created: datetime, status: str, alarm: str | None = None) -> CaptureSession:
    trigger = (
        Trigger(kind="alarm", reason=f"{alarm} in ALARM", event_id="e", alarm_name=alarm)
        if alarm
        else Trigger(kind="manual", reason="checking checkout", event_id="e", requested_by="alice")
    )
    return CaptureSession(
        capture_id=capture_id,
        cluster=CLUSTER,
        status=status,  # type: ignore[arg-type]
        trigger=trigger,
        created_at=created,
        expires_at=created + timedelta(minutes=5),
        duration_seconds=120,
        nodes={
            NODE_A: NodeCapture(node=NODE_A, matched_by="InstanceId", job="j-a", status="completed"),
            NODE_B: NodeCapture(node=NODE_B, matched_by="InstanceId", status="failed", reason="OOM"),
        },
        skipped={"ip-192-168-77-9.us-west-2.compute.internal": "NotReady"},
        findings=["12 unanswered SYNs to 10.0.3.7:5432"],
        s3_prefix=f"captures/{CLUSTER}/{capture_id}/",
    )


SESSIONS = [
    _session("cap-20261125T030000Z-00000001", T0, "completed", alarm="eks-capture-latency"),
    _session("cap-20261125T040000Z-00000002", T0 + timedelta(hours=1), "failed"),
    _session("cap-20261125T050000Z-00000003", T0 + timedelta(hours=2), "running"),
]


@pytest.fixture
def indexed(stack: Stack) -> CaptureStore:
    store = CaptureStore(stack_outputs(stack)["CaptureTableName"])
    for session in SESSIONS:
        store.create_session(session)
    first = SESSIONS[0]
    store.record_file(
        FileRecord(
            capture_id=first.capture_id,
            cluster=CLUSTER,
            node=NODE_A,
            s3_key=f"{first.s3_prefix}{NODE_A}/20261125T030000Z-00001.pcap.zst",
            size=2048,
            packets=77,
            bytes=9000,
            first_ts=T0,
            last_ts=T0 + timedelta(seconds=30),
        )
    )
    return store


def test_list_shows_the_clusters_captures_newest_first(stack: Stack, indexed: CaptureStore) -> None:
    code, out, _ = invoke("list", "--cluster", CLUSTER, "--json", *options(stack))

    assert code == 0
    rows = json.loads(out)
    newest_first = sorted(SESSIONS, key=lambda s: s.created_at, reverse=True)
    assert [r["capture_id"] for r in rows] == [s.capture_id for s in newest_first]
    by_id = {r["capture_id"]: r for r in rows}
    first = SESSIONS[0]
    assert by_id[first.capture_id]["trigger"] == f"alarm {first.trigger.alarm_name}"
    assert (by_id[first.capture_id]["files"], by_id[first.capture_id]["packets"]) == (1, 77)
    assert by_id[first.capture_id]["top_finding"] == first.findings[0]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(
            ["--since", (T0 + timedelta(minutes=30)).isoformat()],
            [s for s in SESSIONS if s.created_at > T0],
            id="since",
        ),
        pytest.param(["--status", "failed"], [s for s in SESSIONS if s.status == "failed"], id="status"),
        pytest.param(
            ["--status", "completed", "--status", "running"],
            [s for s in SESSIONS if s.status in ("completed", "running")],
            id="statuses",
        ),
        pytest.param(["--limit", "1"], [max(SESSIONS, key=lambda s: s.created_at)], id="limit"),
    ],
)
def test_list_filters_narrow_the_captures(
    stack: Stack, indexed: CaptureStore, filters: list[str], expected: list[CaptureSession]
) -> None:
    code, out, _ = invoke("list", "--cluster", CLUSTER, "--json", *filters, *options(stack))

    assert code == 0
    assert {r["capture_id"] for r in json.loads(out)} == {s.capture_id for s in expected}


def test_list_as_a_table_names_every_capture(stack: Stack, indexed: CaptureStore) -> None:
    code, out, _ = invoke("list", "--cluster", CLUSTER, *options(stack))

    assert code == 0
    assert all(session.capture_id in out for session in SESSIONS)


def test_show_gives_nodes_verdicts_files_findings_and_where_they_are(
    stack: Stack, indexed: CaptureStore
) -> None:
    outputs = stack_outputs(stack)
    first = SESSIONS[0]

    code, out, _ = invoke(
        "show", first.capture_id, "--table", outputs["CaptureTableName"],
        "--bucket", outputs["CaptureBucketName"],
    )  # fmt: skip

    assert code == 0, out
    for node in first.nodes.values():
        assert node.node in out
        assert node.status in out
    assert "OOM" in out
    assert "NotReady" in out
    assert "20261125T030000Z-00001.pcap.zst" in out
    assert first.findings[0] in out
    assert first.s3_prefix in out
    assert f"s3/buckets/{outputs['CaptureBucketName']}" in out


def test_show_as_json_carries_the_session_and_its_files(stack: Stack, indexed: CaptureStore) -> None:
    first = SESSIONS[0]

    code, out, _ = invoke("show", first.capture_id, "--json", *options(stack))

    assert code == 0
    shown = json.loads(out)
    assert CaptureSession.model_validate(shown["session"]).nodes == first.nodes
    indexed_keys = [f.s3_key for f in indexed.files_of_capture(first.capture_id)]
    assert [f["s3_key"] for f in shown["files"]] == indexed_keys


def test_the_stack_option_finds_the_names_in_cloudformation_outputs(
    stack: Stack, indexed: CaptureStore
) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in stack_outputs(stack).items()},
    }
    boto3.client("cloudformation").create_stack(StackName="eks-capture", TemplateBody=json.dumps(template))

    code, out, _ = invoke("list", "--cluster", CLUSTER, "--json", "--stack", "eks-capture")

    assert code == 0
    assert len(json.loads(out)) == len(SESSIONS)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["show", "cap-20261125T090000Z-deadbeef"], 3, "not found", id="capture-not-found"),
        pytest.param(["list", "--cluster", CLUSTER, "--since", "yesterday"], 2, "--since", id="bad-time"),
        pytest.param(["list", "-c", CLUSTER, "--stack", "nope"], 3, "stack nope not found", id="no-stack"),
    ],
)
def test_failures_are_one_line_on_stderr_with_a_nonzero_exit(
    stack: Stack, indexed: CaptureStore, args: list[str], code: int, message: str
) -> None:
    extra = [] if "--stack" in args else options(stack)

    exit_code, out, err = invoke(*args, *extra)

    assert exit_code == code
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_without_credentials_the_console_command_says_so_in_one_line(stack: Stack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in ("AWS_ENDPOINT_URL",)}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_DEFAULT_REGION="us-west-2",
        AWS_EC2_METADATA_DISABLED="true",
    )
    command = [sys.executable, "-c", "from eks_capture_cli import main; main()"]

    done = subprocess.run(
        [*command, "list", "--cluster", CLUSTER, *options(stack)], env=env, capture_output=True, text=True
    )

    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.strip().startswith("error: no AWS credentials")
    assert len(done.stderr.strip().splitlines()) == 1


def test_scripts_run_commands_in_process_and_get_the_exit_code(
    stack: Stack, indexed: CaptureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["list", "--cluster", CLUSTER, "--json", *options(stack)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(SESSIONS)
    assert run(["show", "cap-20261125T090000Z-deadbeef", *options(stack)]) == 3
    assert run(["list", "--no-such-option"]) == 2
