"""Plain-language findings ranked by severity, naming endpoints from an optional IP -> name context."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping

from eks_capture.pcap.analysis import Scan
from eks_capture.pcap.models import SEVERITY_RANK, Finding, Severity

UNREACHABLE_CODES = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited",
}
PROTOCOLS = {6: "TCP", 17: "UDP", 1: "ICMP"}


def address(raw: bytes) -> str:
    """Text form of a 4- or 16-byte address."""
    return str(ipaddress.ip_address(raw))


class Namer:
    """Turns raw addresses into ``name (ip)`` when the context knows the IP, else ``ip``."""

    def __init__(self, context: Mapping[str, str] | None) -> None:
        self.context = context or {}

    def name(self, ip: str) -> str | None:
        return self.context.get(ip)

    def host(self, raw: bytes) -> str:
        ip = address(raw)
        name = self.context.get(ip)
        return f"{name} ({ip})" if name else ip

    def endpoint(self, raw: bytes) -> str:
        """``raw`` is an address followed by a 2-byte port."""
        port = int.from_bytes(raw[-2:], "big")
        host = self.host(raw[:-2])
        return f"[{host}]:{port}" if len(raw) == 18 and "(" not in host else f"{host}:{port}"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _rate_severity(part: int, whole: int) -> Severity:
    rate = part / whole if whole else 1.0
    return "critical" if rate >= 0.10 else "warning" if rate >= 0.01 else "info"


def tcp_findings(scan: Scan, names: Namer) -> list[Finding]:
    """Unanswered and refused handshakes, retransmissions, resets and zero windows per server."""
    found: list[Finding] = []
    for server, stats in scan.tcp.counts.by_server.items():
        where = names.endpoint(server)
        if stats.unanswered:
            retries = stats.unanswered_syn_packets - stats.unanswered
            extra = f" ({_plural(retries, 'retry', 'retries')})" if retries > 0 else ""
            found.append(
                Finding(
                    severity="critical",
                    kind="tcp.unanswered_syns",
                    message=f"{_plural(stats.unanswered, 'SYN')} to {where} never answered{extra}",
                    count=stats.unanswered,
                    subject=where,
                )
            )
        if stats.refused:
            found.append(
                Finding(
                    severity="warning",
                    kind="tcp.refused",
                    message=f"{_plural(stats.refused, 'connection')} to {where} refused (RST, port closed?)",
                    count=stats.refused,
                    subject=where,
                )
            )
        if stats.retransmissions:
            found.append(
                Finding(
                    severity=_rate_severity(stats.retransmissions, stats.packets),
                    kind="tcp.retransmissions",
                    message=(
                        f"{_plural(stats.retransmissions, 'retransmission')} in "
                        f"{_plural(stats.connections, 'connection')} to {where} "
                        f"({100 * stats.retransmissions / max(stats.packets, 1):.1f}% of packets)"
                    ),
                    count=stats.retransmissions,
                    subject=where,
                )
            )
        established_resets = stats.resets - stats.refused
        if established_resets > 0:
            found.append(
                Finding(
                    severity="warning",
                    kind="tcp.resets",
                    message=f"{_plural(established_resets, 'reset')} in connections to {where}",
                    count=established_resets,
                    subject=where,
                )
            )
        if stats.zero_windows:
            found.append(
                Finding(
                    severity="warning",
                    kind="tcp.zero_windows",
                    message=(
                        f"{_plural(stats.zero_windows, 'zero-window advertisement')} in connections to "
                        f"{where}: a receiver stopped reading"
                    ),
                    count=stats.zero_windows,
                    subject=where,
                )
            )
    return found


def _per_server(
    counter: Counter[bytes], kind: str, severity: Severity, text: str, names: Namer
) -> list[Finding]:
    return [
        Finding(
            severity=severity,
            kind=kind,
            message=text.format(server=names.host(server), queries=_plural(count, "query", "queries")),
            count=count,
            subject=names.host(server),
        )
        for server, count in counter.items()
        if count > 0
    ]


def dns_findings(scan: Scan, names: Namer) -> list[Finding]:
    """SERVFAIL, NXDOMAIN and silence, per DNS server."""
    counts = scan.dns.counts
    servfail = "DNS SERVFAIL from {server} for {queries}"
    silent = "{queries} to DNS server {server} never answered"
    nxdomain = "DNS NXDOMAIN from {server} for {queries}"
    return [
        *_per_server(counts.servfail_by_server, "dns.servfail", "critical", servfail, names),
        *_per_server(counts.unanswered_by_server, "dns.unanswered", "critical", silent, names),
        *_per_server(counts.nxdomain_by_server, "dns.nxdomain", "info", nxdomain, names),
    ]


def icmp_findings(scan: Scan, names: Namer) -> list[Finding]:
    """Destination-unreachable messages, grouped by who reported them and about what."""
    found: list[Finding] = []
    for (reporter, code, dst, proto, port), entry in scan.unreachable.items():
        what = UNREACHABLE_CODES.get(code, f"unreachable (code {code})")
        target = names.host(dst) if dst else "an unknown destination"
        if dst and proto in (6, 17):
            target = f"{PROTOCOLS[proto]} {target}:{port}"
        if code == 4:
            message = (
                f"ICMP fragmentation needed from {names.host(reporter)} for {target} "
                f"(next-hop MTU {entry.next_hop_mtu}), {_plural(entry.count, 'packet')}: path MTU problem"
            )
            severity: Severity = "critical"
        else:
            message = f"ICMP {what} from {names.host(reporter)} for {target}, " + _plural(
                entry.count, "packet"
            )
            severity = "warning"
        kind = f"icmp.unreachable.{code}"
        found.append(
            Finding(severity=severity, kind=kind, message=message, count=entry.count, subject=target)
        )
    return found


def rank(findings: list[Finding], limit: int) -> list[Finding]:
    """Most severe first, then the largest counts; at most ``limit``."""
    ordered = sorted(findings, key=lambda f: (SEVERITY_RANK[f.severity], -f.count, f.kind, f.subject))
    return ordered[:limit]
