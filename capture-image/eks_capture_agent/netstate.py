"""A snapshot of the node's network state, taken before and after a capture.

Every section is read on its own: what cannot be read (no ethtool, no conntrack module, a kernel
without a file) is recorded as unavailable with the reason, never raised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from eks_capture_agent.timestamps import iso_utc

ALLOWANCE_SUFFIX = "_allowance_exceeded"
COMMAND_TIMEOUT_SECONDS = 5.0


def parse_proc_table(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` and ``/proc/net/netstat``: a header line then a value line per protocol."""
    tables: dict[str, dict[str, int]] = {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        protocol = header[0].rstrip(":")
        if values[0].rstrip(":") != protocol:
            raise ValueError(f"header {protocol!r} is followed by values for {values[0]!r}")
        tables[protocol] = {name: int(value) for name, value in zip(header[1:], values[1:], strict=True)}
    return tables


def parse_name_value_lines(text: str) -> dict[str, int]:
    """``/proc/net/snmp6``: one ``Name value`` pair per line."""
    pairs = (line.split() for line in text.splitlines())
    return {
        fields[0]: int(fields[1]) for fields in pairs if len(fields) == 2 and fields[1].lstrip("-").isdigit()
    }


def parse_ethtool_stats(text: str) -> dict[str, int]:
    """``ethtool -S``: ``name: value`` lines under a ``NIC statistics:`` heading."""
    stats: dict[str, int] = {}
    for line in text.splitlines():
        name, separator, value = line.strip().rpartition(":")
        if separator and name and value.strip().isdigit():
            stats[name.strip()] = int(value)
    return stats


def allowance_counters(stats: dict[str, int]) -> dict[str, int]:
    """ENA counters of packets shaped by the instance's allowances (bw_in/out, pps, conntrack, linklocal)."""
    return {name: value for name, value in stats.items() if name.endswith(ALLOWANCE_SUFFIX)}


def _hex_ipv4(field: str) -> str:
    raw = int(field, 16).to_bytes(4, "little")
    return ".".join(str(octet) for octet in raw)


def parse_proc_route(text: str) -> list[dict[str, str | int]]:
    """``/proc/net/route`` (the main IPv4 table, little-endian hex) as readable routes."""
    routes: list[dict[str, str | int]] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        routes.append(
            {
                "interface": fields[0],
                "destination": _hex_ipv4(fields[1]),
                "gateway": _hex_ipv4(fields[2]),
                "mask": _hex_ipv4(fields[7]),
                "flags": int(fields[3], 16),
                "metric": int(fields[6]),
            }
        )
    return routes


@dataclass(frozen=True)
class Sources:
    """Where the snapshot reads from: the real /proc and /sys, or a test's stand-ins."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    ip: str | None = shutil.which("ip")
    ethtool: str | None = shutil.which("ethtool")


def _section(read: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"available": True, "value": read()}
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        return {"available": False, "reason": f"{type(error).__name__}: {error}"}


def _command(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        raise subprocess.SubprocessError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _ip_json(sources: Sources, *args: str) -> Any:
    if sources.ip is None:
        raise FileNotFoundError("ip (iproute2) is not installed")
    return json.loads(_command([sources.ip, "-j", *args]) or "[]")


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _interface(directory: Path) -> dict[str, Any]:
    statistics = {entry.name: _read_int(entry) for entry in (directory / "statistics").iterdir()}
    return {
        "mtu": _read_int(directory / "mtu"),
        "operstate": (directory / "operstate").read_text().strip(),
        "address": (directory / "address").read_text().strip(),
        "physical": (directory / "device").exists(),
        "statistics": statistics,
    }


def _interfaces(sources: Sources) -> dict[str, Any]:
    net = sources.sys / "class" / "net"
    return {entry.name: _section(partial(_interface, Path(entry.path))) for entry in os.scandir(net)}


def _ethtool(sources: Sources, interface: str) -> dict[str, Any]:
    if sources.ethtool is None:
        raise FileNotFoundError("ethtool is not installed")
    stats = parse_ethtool_stats(_command([sources.ethtool, "-S", interface]))
    return {"allowance_exceeded": allowance_counters(stats), "statistics": stats}


def _physical_interfaces(sources: Sources) -> list[str]:
    net = sources.sys / "class" / "net"
    return sorted(entry.name for entry in os.scandir(net) if (Path(entry.path) / "device").exists())


def _nic_statistics(sources: Sources) -> dict[str, Any]:
    return {name: _section(partial(_ethtool, sources, name)) for name in _physical_interfaces(sources)}


def _conntrack(sources: Sources) -> dict[str, int]:
    base = sources.proc / "sys" / "net" / "netfilter"
    return {"count": _read_int(base / "nf_conntrack_count"), "max": _read_int(base / "nf_conntrack_max")}


def snapshot(sources: Sources | None = None, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The node's network state as one JSON-ready document."""
    where = sources or Sources()
    net = where.proc / "net"
    return {
        "schema": 1,
        "taken_at": iso_utc(now()),
        "interfaces": _section(lambda: _interfaces(where)),
        "addresses": _section(lambda: _ip_json(where, "address")),
        "routes": _section(lambda: _ip_json(where, "route", "show", "table", "all")),
        "rules": _section(lambda: _ip_json(where, "rule")),
        "ipv4_main_routes": _section(lambda: parse_proc_route((net / "route").read_text())),
        "snmp": _section(lambda: parse_proc_table((net / "snmp").read_text())),
        "netstat": _section(lambda: parse_proc_table((net / "netstat").read_text())),
        "snmp6": _section(lambda: parse_name_value_lines((net / "snmp6").read_text())),
        "conntrack": _section(lambda: _conntrack(where)),
        "nic_statistics": _section(lambda: _nic_statistics(where)),
    }
