"""The AWS half of the local cloud: moto's server in its own process, reached over HTTP.

boto3 finds it through the standard ``AWS_ENDPOINT_URL`` variable, so production code runs
unchanged: nothing is patched in-process. The server is moto's with the EKS operations moto lacks
(localcloud/motoserver.py: EKS access entries, add-ons, Pod Identity associations, authentication mode;
S3's EventBridge notification setting).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

REGION = "us-west-2"
ACCOUNT_ID = "123456789012"


def free_port() -> int:
    """Ask the kernel for a port nobody listens on, so parallel runs never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server and the environment that points boto3 at it."""

    port: int
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Variables a process needs to use this server as its AWS (the standard chain, no code change)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def reset(self) -> None:
        """Forget every resource, so each test starts from an empty account."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_moto_server(port: int | None = None, timeout: float = 30.0) -> MotoServer:
    """Start moto's server (with localcloud/motoserver.py's additions) on 127.0.0.1; wait until it answers."""
    chosen = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud.motoserver", "-H", "127.0.0.1", "-p", str(chosen)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_CALL_RESET_API": "true"},
    )
    server = MotoServer(port=chosen, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/data.json", timeout=1):
                return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"moto server on port {chosen} did not answer within {timeout:.0f}s")


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """A moto server for the length of a ``with`` block."""
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()
