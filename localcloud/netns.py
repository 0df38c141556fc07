"""Test hosts in network namespaces: real interfaces, real packets, no traffic leaving the machine.

A ``TestNetwork`` is a switch (a bridge in its own namespace) with one namespace per host plugged
into it through a veth pair. Segmentation offloads are off on every interface so tcpdump sees the
segments a real NIC would put on the wire, not 64 KB super-packets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

SUBNET_PREFIX = "10.77.0"


def can_make_namespaces() -> bool:
    """Whether this process may create namespaces and capture (root with ip and tcpdump on PATH)."""
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("ip", "tcpdump", "ethtool"))


def _run(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    """One namespace with one interface (``dev``) and one IPv4 address on the test subnet."""

    netns: str
    ip: str
    dev: str = "eth0"

    def argv(self, command: Sequence[str]) -> list[str]:
        """The command line that runs ``command`` inside this host."""
        return ["ip", "netns", "exec", self.netns, *command]

    def run(self, command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), text=True, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]

    def popen(self, command: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(command), **kwargs)  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True)
class TestNetwork:
    """Hosts on one L2 segment, by name."""

    __test__ = False  # not a pytest test class despite the name
    switch: str
    hosts: dict[str, Host]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]


def _offloads_off(netns: str, dev: str) -> None:
    _run(["ip", "netns", "exec", netns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])


@contextmanager
def test_network(tag: str, names: Sequence[str]) -> Iterator[TestNetwork]:
    """Create hosts ``names`` on a private switch; everything is removed on exit, even after a failure.

    ``tag`` keeps namespaces of concurrent runs apart (keep it short: interface names are 15 bytes).
    """
    unique = f"{tag}{os.getpid() % 100000}"
    switch = f"sw-{unique}"
    created: list[str] = []
    try:
        _run(["ip", "netns", "add", switch])
        created.append(switch)
        _run(["ip", "netns", "exec", switch, "ip", "link", "add", "br0", "type", "bridge"])
        _run(["ip", "netns", "exec", switch, "ip", "link", "set", "br0", "up"])
        hosts: dict[str, Host] = {}
        for index, name in enumerate(names, start=1):
            netns = f"{name}-{unique}"
            _run(["ip", "netns", "add", netns])
            created.append(netns)
            port = f"p{index}"
            _run(["ip", "link", "add", "eth0", "netns", netns, "type", "veth", "peer", port, "netns", switch])
            _run(["ip", "netns", "exec", switch, "ip", "link", "set", port, "master", "br0", "up"])
            ip = f"{SUBNET_PREFIX}.{index + 1}"
            _run(["ip", "netns", "exec", netns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0"])
            _run(["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", "up"])
            _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"])
            _offloads_off(netns, "eth0")
            _offloads_off(switch, port)
            hosts[name] = Host(netns=netns, ip=ip)
        yield TestNetwork(switch=switch, hosts=hosts)
    finally:
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)


@contextmanager
def routed_network(tag: str, left: str, right: str, router: str = "network") -> Iterator[TestNetwork]:
    """Two hosts on two subnets joined by a router namespace: ``left`` on 10.78.1/24, ``right`` on 10.78.2/24.

    The router's interfaces are ``to-<left>`` and ``to-<right>`` (use them in FORWARD rules and qdiscs);
    what happens there is "the network" between the two hosts, unseen by either host's capture.
    """
    unique = f"{tag}{os.getpid() % 100000}"
    created: list[str] = []
    try:
        middle = f"{router}-{unique}"
        _run(["ip", "netns", "add", middle])
        created.append(middle)
        _run(["ip", "netns", "exec", middle, "ip", "link", "set", "lo", "up"])
        _run(["ip", "netns", "exec", middle, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        hosts = {router: Host(netns=middle, ip="10.78.1.1", dev=f"to-{left}")}
        for subnet, name in ((1, left), (2, right)):
            netns = f"{name}-{unique}"
            _run(["ip", "netns", "add", netns])
            created.append(netns)
            port = f"to-{name}"
            _run(["ip", "link", "add", "eth0", "netns", netns, "type", "veth", "peer", port, "netns", middle])
            _run(["ip", "netns", "exec", middle, "ip", "addr", "add", f"10.78.{subnet}.1/24", "dev", port])
            _run(["ip", "netns", "exec", middle, "ip", "link", "set", port, "up"])
            ip = f"10.78.{subnet}.2"
            _run(["ip", "netns", "exec", netns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0"])
            _run(["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", "up"])
            _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"])
            _run(["ip", "netns", "exec", netns, "ip", "route", "add", "default", "via", f"10.78.{subnet}.1"])
            _offloads_off(netns, "eth0")
            _offloads_off(middle, port)
            hosts[name] = Host(netns=netns, ip=ip)
        yield TestNetwork(switch=middle, hosts=hosts)
    finally:
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
