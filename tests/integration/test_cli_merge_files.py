"""``eks-capture merge`` on files real tcpdump and dumpcap wrote: mergecap's packets, in mergecap's order.

mergecap (Wireshark) is the oracle for the packets and their order, tshark for the interface each packet
is shown on. The captures were taken of the same traffic at once, so many packets are near-simultaneous
across the inputs: the order of close and equal times is what is checked.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from eks_capture.pcap import CaptureReader
from eks_capture_cli import run
from tests.fixtures.traffic import Captures

pytestmark = pytest.mark.root


def _packets(path: Path) -> list[tuple[int, bytes]]:
    """(time in ns, captured bytes) of every packet, in file order."""
    with path.open("rb") as stream:
        return [
            (ts, bytes(buf[off : off + cap])) for ts, _link, buf, off, cap, _wire in CaptureReader(stream)
        ]


def _interfaces(path: Path) -> list[str]:
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def _mergecap(inputs: list[Path], out: Path) -> Path:
    subprocess.run(["mergecap", "-w", str(out), *map(str, inputs)], check=True, capture_output=True)
    return out


def _as_pcapng(source: Path, out: Path) -> Path:
    subprocess.run(["editcap", "-F", "pcapng", str(source), str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize(
    ("case", "files"),
    [
        ("two tcpdump pcaps, micro- and nanosecond", ["ethernet.pcap", "any-nano.pcap"]),
        ("a dumpcap pcapng with two interfaces and a pcap", ["server.pcapng", "ethernet.pcap"]),
        ("compressed inputs", ["ethernet.pcap.gz", "server.pcapng.zst"]),
    ],
)
def test_merge_writes_mergecaps_packets_in_mergecaps_order(
    case: str, files: list[str], faulty_captures: Captures, tmp_path: Path
) -> None:
    inputs = [faulty_captures[name] for name in files]
    ours = tmp_path / "ours.pcapng"

    code = run(["merge", *map(str, inputs), "-o", str(ours)])

    assert code == 0
    plain = [Path(str(p).removesuffix(".gz").removesuffix(".zst")) for p in inputs]
    theirs = _mergecap(plain, tmp_path / "mergecap.pcapng")
    assert _packets(ours) == _packets(theirs)
    assert len(_interfaces(ours)) == len(_packets(theirs)) > 0


def test_merge_of_pcapng_files_matches_mergecap(faulty_captures: Captures, tmp_path: Path) -> None:
    inputs = [
        _as_pcapng(faulty_captures["ethernet.pcap"], tmp_path / "ethernet.pcapng"),
        _as_pcapng(faulty_captures["any-nano.pcap"], tmp_path / "any-nano.pcapng"),
        faulty_captures["server.pcapng"],
    ]
    ours = tmp_path / "ours.pcapng"

    assert run(["merge", *map(str, inputs), "-o", str(ours)]) == 0

    assert _packets(ours) == _packets(_mergecap(inputs, tmp_path / "mergecap.pcapng"))


def test_each_packet_is_shown_on_its_files_node_name(faulty_captures: Captures, tmp_path: Path) -> None:
    client, server = faulty_captures["ethernet.pcap"], faulty_captures["server.pcapng"]
    ours = tmp_path / "ours.pcapng"

    assert run(["merge", str(client), str(server), "-o", str(ours), "--name", f"{client}=ip-10-0-1-5"]) == 0

    counts = {name: _interfaces(ours).count(name) for name in ("ip-10-0-1-5", "server")}
    assert counts == {"ip-10-0-1-5": len(_packets(client)), "server": len(_packets(server))}
