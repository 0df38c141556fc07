"""Faulty traffic on this machine's loopback, for the demo's capture to catch.

A TCP service that answers, a port nobody listens on (resets), and a DNS server that answers some
names with NXDOMAIN or SERVFAIL and ignores others (unanswered queries). Everything stays on
127.0.0.0/8 and stops by itself.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

DNS_ADDRESS = ("127.0.0.77", 53)
SERVICE_ADDRESS = ("127.0.0.1", 18080)
CLOSED_ADDRESS = ("127.0.0.1", 18081)
CAPTURE_FILTER = "udp port 53 or tcp port 18080 or tcp port 18081"

NXDOMAIN, SERVFAIL = 3, 2
ANSWERS = {"missing.shop.svc.cluster.local": NXDOMAIN, "ledger.payments.svc.cluster.local": SERVFAIL}


def _query(name: str, query_id: int) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def _name(message: bytes) -> str:
    parts, offset = [], 12
    while message[offset]:
        length = message[offset]
        parts.append(message[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    return ".".join(parts)


@dataclass
class FaultyTraffic:
    """Background clients and servers; ``stop()`` ends them (they also end after ``seconds``)."""

    seconds: float
    sent: dict[str, int] = field(default_factory=lambda: {"requests": 0, "refused": 0, "dns": 0})
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> FaultyTraffic:
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.bind(DNS_ADDRESS)
        dns.settimeout(0.2)
        service = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        service.bind(SERVICE_ADDRESS)
        service.listen(64)
        service.settimeout(0.2)
        for target, args in ((self._dns_server, (dns,)), (self._service, (service,)), (self._clients, ())):
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _running(self, started: float) -> bool:
        return not self._stop.is_set() and time.monotonic() - started < self.seconds

    def _dns_server(self, sock: socket.socket) -> None:
        started = time.monotonic()
        with sock:
            while self._running(started):
                try:
                    message, peer = sock.recvfrom(512)
                except TimeoutError:
                    continue
                rcode = ANSWERS.get(_name(message))
                if rcode is None:
                    continue  # the ignored names stay unanswered
                header = struct.pack(
                    "!HHHHHH", struct.unpack("!H", message[:2])[0], 0x8180 | rcode, 1, 0, 0, 0
                )
                sock.sendto(header + message[12:], peer)

    def _service(self, sock: socket.socket) -> None:
        started = time.monotonic()
        with sock:
            while self._running(started):
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def _clients(self) -> None:
        started, query_id = time.monotonic(), 0
        names = [*ANSWERS, "slow.payments.svc.cluster.local"]
        while self._running(started):
            with socket.create_connection(SERVICE_ADDRESS, timeout=1) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                conn.recv(1024)
                self.sent["requests"] += 1
            try:
                socket.create_connection(CLOSED_ADDRESS, timeout=1).close()
            except ConnectionRefusedError:
                self.sent["refused"] += 1
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                query_id = (query_id + 1) % 65536
                udp.sendto(_query(names[query_id % len(names)], query_id), DNS_ADDRESS)
                self.sent["dns"] += 1
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
