"""Network-state parsers (/proc tables, ethtool -S, routes) and a snapshot that never crashes."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from eks_capture_agent.netstate import (
    Sources,
    allowance_counters,
    parse_ethtool_stats,
    parse_name_value_lines,
    parse_proc_route,
    parse_proc_table,
    snapshot,
)

ENA_COUNTERS = {
    "tx_timeout": 0,
    "interface_up": 1,
    "bw_in_allowance_exceeded": 12,
    "bw_out_allowance_exceeded": 3,
    "pps_allowance_exceeded": 4,
    "conntrack_allowance_available": 136812,
    "conntrack_allowance_exceeded": 5,
    "linklocal_allowance_exceeded": 6,
    "queue_0_tx_cnt": 987654,
}


def _ethtool_text(counters: dict[str, int]) -> str:
    return "NIC statistics:\n" + "".join(f"     {name}: {value}\n" for name, value in counters.items())


def test_ethtool_statistics_are_read_as_numbers() -> None:
    assert parse_ethtool_stats(_ethtool_text(ENA_COUNTERS)) == ENA_COUNTERS


def test_the_ena_allowance_counters_are_the_exceeded_ones() -> None:
    exceeded = allowance_counters(ENA_COUNTERS)
    assert set(exceeded) == {
        "bw_in_allowance_exceeded",
        "bw_out_allowance_exceeded",
        "pps_allowance_exceeded",
        "conntrack_allowance_exceeded",
        "linklocal_allowance_exceeded",
    }
    assert all(exceeded[name] == ENA_COUNTERS[name] for name in exceeded)


def test_proc_tables_pair_each_header_with_its_values() -> None:
    tables = {"Ip": {"Forwarding": 1, "InReceives": 856194}, "Tcp": {"RetransSegs": 42, "CurrEstab": 7}}
    text = "".join(
        f"{proto}: {' '.join(fields)}\n{proto}: {' '.join(str(v) for v in fields.values())}\n"
        for proto, fields in tables.items()
    )
    assert parse_proc_table(text) == tables


def test_a_proc_table_with_mismatched_lines_is_an_error() -> None:
    with pytest.raises(ValueError, match="Tcp"):
        parse_proc_table("Ip: Forwarding\nTcp: 1\n")


def test_snmp6_lines_are_name_value_pairs() -> None:
    assert parse_name_value_lines("Ip6InReceives  17\nIp6OutRequests\t-3\n") == {
        "Ip6InReceives": 17,
        "Ip6OutRequests": -3,
    }


def _hex(address: str) -> str:
    return f"{struct.unpack('<I', socket.inet_aton(address))[0]:08X}"


def test_proc_routes_are_decoded_from_little_endian_hex() -> None:
    header = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT"
    row = f"eth0\t{_hex('0.0.0.0')}\t{_hex('192.168.1.1')}\t0003\t0\t0\t100\t{_hex('0.0.0.0')}\t0\t0\t0"
    [route] = parse_proc_route(f"{header}\n{row}\n")
    assert route == {
        "interface": "eth0", "destination": "0.0.0.0", "gateway": "192.168.1.1",
        "mask": "0.0.0.0", "flags": 3, "metric": 100,
    }  # fmt: skip


def test_a_snapshot_of_a_machine_with_nothing_readable_records_every_section_as_unavailable(
    tmp_path: Path,
) -> None:
    document = snapshot(Sources(proc=tmp_path / "proc", sys=tmp_path / "sys", ip=None, ethtool=None))
    sections = {name: value for name, value in document.items() if isinstance(value, dict)}
    assert len(sections) >= 9
    assert all(value["available"] is False and value["reason"] for value in sections.values())


def test_a_failing_ethtool_is_recorded_per_interface(tmp_path: Path) -> None:
    nic = tmp_path / "sys" / "class" / "net" / "eth0"
    (nic / "statistics").mkdir(parents=True)
    (nic / "device").mkdir()
    (nic / "statistics" / "rx_packets").write_text("5\n")
    for name, value in {"mtu": "9001", "operstate": "up", "address": "02:00:00:00:00:01"}.items():
        (nic / name).write_text(value + "\n")
    document = snapshot(Sources(proc=tmp_path / "proc", sys=tmp_path / "sys", ip=None, ethtool="/bin/false"))
    interface = document["interfaces"]["value"]["eth0"]
    assert interface == {
        "available": True,
        "value": {"mtu": 9001, "operstate": "up", "address": "02:00:00:00:00:01", "physical": True,
                  "statistics": {"rx_packets": 5}},
    }  # fmt: skip
    ethtool = document["nic_statistics"]["value"]["eth0"]
    assert ethtool["available"] is False
    assert "exited 1" in ethtool["reason"]


def test_a_snapshot_of_this_machine_reads_the_kernel_counters() -> None:
    document = snapshot()
    assert document["snmp"]["available"] is True
    assert "InReceives" in document["snmp"]["value"]["Ip"]
    assert document["interfaces"]["value"]["lo"]["available"] is True
