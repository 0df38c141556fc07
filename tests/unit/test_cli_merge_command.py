"""``eks-capture merge``'s refusals: a clear line, exit 2, and no output file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from eks_capture_cli import run
from eks_capture_cli.merging import node_name
from tests.fixtures.packets import Packet, ethernet, ipv4, pcap, udp


def _capture(path: Path, start_ns: int) -> Path:
    frames = [Packet(start_ns + i * 1000, ethernet(ipv4(udp(b"x" * i)))) for i in range(3)]
    path.write_bytes(pcap(frames))
    return path


@pytest.mark.parametrize(
    ("file", "node"),
    [
        ("ip-10-0-1-5.pcap", "ip-10-0-1-5"),
        ("ip-10-0-1-5.pcapng.zst", "ip-10-0-1-5"),
        ("20260101T031200Z-00001.pcap.gz", "20260101T031200Z-00001"),
        ("capture", "capture"),
    ],
)
def test_a_file_without_a_name_is_shown_under_its_file_name(file: str, node: str) -> None:
    assert node_name(Path(file)) == node


@pytest.mark.parametrize(
    ("case", "extra", "why"),
    [
        ("a name without =", ["--name", "a.pcap"], "expected FILE=NODE"),
        ("a name for a file not merged", ["--name", "c.pcap=node-c"], "is not one of the files to merge"),
        ("an empty node name", ["--name", "a.pcap="], "expected FILE=NODE"),
        ("a file listed twice", ["a.pcap"], "is listed twice"),
        ("a file that is no capture", ["notes.txt"], "is not a capture: not a pcap or pcapng file"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    case: str,
    extra: list[str],
    why: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _capture(tmp_path / "a.pcap", 10**18)
    _capture(tmp_path / "b.pcap", 10**18 + 500)
    (tmp_path / "c.pcap").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a capture\n")

    code = run(["merge", "a.pcap", "b.pcap", *extra, "-o", "out.pcapng"])

    assert code == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "out.pcapng").exists()


def test_the_output_may_not_be_an_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _capture(tmp_path / "a.pcap", 10**18)

    assert run(["merge", str(a), "-o", str(a)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert a.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")
