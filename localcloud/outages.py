"""Outages of the local cloud's services, as a client sees them: refused and cut connections (S3 gone for a
while), and a DynamoDB that throttles chosen operations with its own errors."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from localcloud.aws import ACCOUNT_ID, REGION, free_port


class PausableProxy:
    """A TCP forwarder in front of moto that can go away and come back on the same port: a real S3 outage
    (connections refused and cut) that moto's stored objects survive."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resume(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def pause(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        if self._listener is not None:
            sockets.append(self._listener)
            self._listener = None
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
TRANSACTIONS = frozenset({"TransactWriteItems", "TransactGetItems"})
ThrottlingAnswer = Literal[
    "AccessDeniedException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "TransactionCanceledException",
    "UnprocessedKeys",
]
_ERROR_TYPES: dict[str, str] = {
    "AccessDeniedException": "com.amazon.coral.service#AccessDeniedException",
    "ProvisionedThroughputExceededException": "com.amazonaws.dynamodb.v20120810#"
    "ProvisionedThroughputExceededException",
    "ThrottlingException": "com.amazon.coral.availability#ThrottlingException",
    "TransactionCanceledException": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
}
_ERROR_MESSAGES: dict[str, str] = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput for the "
    "table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
    "ThrottlingError": "Throughput exceeds the current capacity of your table or index. DynamoDB is "
    "automatically scaling your table or index so please try again shortly.",
}
#: Who a denied request came from, as IAM's refusal names it (the proxy does not resolve the signature's key).
DENIED_PRINCIPAL = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/eks-capture-TriggerRole/eks-capture-trigger"
#: The IAM action a transaction's item is authorized as (DynamoDB's "Using IAM with transactions").
_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}


@dataclass(frozen=True)
class Throttling:
    """DynamoDB refusing a share of chosen operations, as a table past its capacity does.

    ``operations`` are API names (``PutItem``, ``TransactWriteItems``; empty: every operation),
    ``rate`` the share refused, ``times`` how many refusals at most, ``naming`` a key value the request
    must name (empty: any request): a hot partition, which DynamoDB throttles alone. ``error`` is the
    answer: ProvisionedThroughputExceededException (a table's capacity), ThrottlingException (control
    plane and on-demand limits), for transactions TransactionCanceledException whose reasons name one
    item ThrottlingError, for BatchGetItem UnprocessedKeys: a success that reads only part of the
    keys and hands back the rest, as a batch past its table's capacity is answered; or
    AccessDeniedException, IAM's refusal (with ``naming``: a Deny on the ``dynamodb:LeadingKeys`` named).
    """

    operations: frozenset[str] = frozenset()
    rate: float = 1.0
    times: int | None = None
    error: ThrottlingAnswer = "ProvisionedThroughputExceededException"
    naming: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], not {self.rate}")
        cancels = self.error == "TransactionCanceledException"
        if cancels and not (self.operations and self.operations <= TRANSACTIONS):
            raise ValueError(
                f"operations: only {sorted(TRANSACTIONS)} are cancelled, not {sorted(self.operations)}"
            )
        if self.error == "UnprocessedKeys" and self.operations != {"BatchGetItem"}:
            raise ValueError(
                f"operations: only BatchGetItem leaves keys unprocessed, not {sorted(self.operations)}"
            )

    def applies_to(self, operation: str, body: str = "") -> bool:
        return (not self.operations or operation in self.operations) and self.naming in body


def access_denied_message(operation: str, request: dict[str, Any]) -> str:
    """IAM's words for a denied DynamoDB call: who, which action (a transaction's items are authorized as
    their own actions), on which table."""
    action, table = operation, request.get("TableName")
    for item in request.get("TransactItems") or []:
        ((kind, call),) = item.items()
        action, table = _ITEM_ACTIONS.get(kind, operation), call.get("TableName")
        break
    return (
        f"User: {DENIED_PRINCIPAL} is not authorized to perform: dynamodb:{action} on resource: "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table} "
        "with an explicit deny in an identity-based policy"
    )


def throttling_reply(
    error: ThrottlingAnswer, request: dict[str, Any], rng: random.Random, operation: str
) -> bytes:
    """The body DynamoDB answers a throttled (or denied) request with (HTTP 400, JSON 1.0)."""
    if error == "AccessDeniedException":
        message = access_denied_message(operation, request)
        return json.dumps({"__type": _ERROR_TYPES[error], "Message": message}).encode()
    if error != "TransactionCanceledException":
        return json.dumps({"__type": _ERROR_TYPES[error], "message": _ERROR_MESSAGES[error]}).encode()
    items = len(request.get("TransactItems") or []) or 1
    throttled = rng.randrange(items)
    reasons: list[dict[str, str]] = [{"Code": "None"} for _ in range(items)]
    reasons[throttled] = {"Code": "ThrottlingError", "Message": _ERROR_MESSAGES["ThrottlingError"]}
    codes = ", ".join(r["Code"] for r in reasons)
    return json.dumps(
        {
            "__type": _ERROR_TYPES[error],
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
            f"[{codes}]",
            "CancellationReasons": reasons,
        }
    ).encode()


def serving(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """An HTTP server on a free local port, answering with ``handler`` on its own daemon threads."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class DynamoDBProxy:
    """An HTTP forwarder in front of moto's DynamoDB that throttles as the rules set by ``throttle`` ask.

    It passes one request at a time, as moto's server (localcloud/motoserver.py) runs them: moto reads,
    checks and writes an item without a lock, where DynamoDB applies each write and each transaction to
    its items atomically. Serialized, moto's answers are ones DynamoDB could give.
    """

    def __init__(self, target_url: str, seed: int = 0) -> None:
        self.target = urlsplit(target_url)
        self.requests: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self._rules: list[Throttling] = []
        self._refusals: Counter[int] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = serving(self._handler())

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def throttle(
        self,
        *operations: str,
        rate: float = 1.0,
        times: int | None = None,
        error: ThrottlingAnswer = "ProvisionedThroughputExceededException",
        naming: str = "",
    ) -> Throttling:
        """Refuse ``rate`` of ``operations`` (all when none are named; only those naming ``naming``) from
        now on."""
        rule = Throttling(frozenset(operations), rate, times, error, naming)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Serve every request again."""
        with self._lock:
            self._rules.clear()
            self._refusals.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """One request: refused by the first rule that picks it, else moto's answer, alone."""
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        operation = target.removeprefix(DYNAMODB_TARGET_PREFIX)
        with self._lock:
            self.requests[operation] += 1
            error = self._refusal(operation, body.decode(errors="replace"))
            if error == "UnprocessedKeys":
                self.throttled[operation] += 1
                return self._batch_get_in_part(path, body, headers)
            if error is not None:
                self.throttled[operation] += 1
                reply = throttling_reply(error, json.loads(body or b"{}"), self._rng, operation)
                return (
                    400,
                    reply,
                    [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "throttled")],
                )
            return self._forward(path, body, headers)

    def _refusal(self, operation: str, body: str) -> ThrottlingAnswer | None:
        for index, rule in enumerate(self._rules):
            if not rule.applies_to(operation, body):
                continue
            if rule.times is not None and self._refusals[index] >= rule.times:
                continue
            if self._rng.random() < rule.rate:
                self._refusals[index] += 1
                return rule.error
        return None

    def _batch_get_in_part(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """BatchGetItem served for the first half of each table's keys (rounded up); the others come back
        as UnprocessedKeys, with the request's own projection and consistency, for the caller to ask again."""
        request = json.loads(body)
        served: dict[str, Any] = {}
        unprocessed: dict[str, Any] = {}
        for table, asked in request["RequestItems"].items():
            half = (len(asked["Keys"]) + 1) // 2
            served[table] = {**asked, "Keys": asked["Keys"][:half]}
            if asked["Keys"][half:]:
                unprocessed[table] = {**asked, "Keys": asked["Keys"][half:]}
        forwarded = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        status, reply, reply_headers = self._forward(
            path, json.dumps({**request, "RequestItems": served}).encode(), forwarded
        )
        if status != 200:
            return status, reply, reply_headers
        answer = json.loads(reply)
        answer["UnprocessedKeys"] = unprocessed
        data = json.dumps(answer).encode()
        kept = [(k, v) for k, v in reply_headers if k.lower() not in ("content-length", "x-amz-crc32")]
        return status, data, [*kept, ("x-amz-crc32", str(zlib.crc32(data)))]

    def _forward(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        connection = HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port, timeout=60)
        try:
            connection.request("POST", path, body, {k: v for k, v in headers.items() if k.lower() != "host"})
            response = connection.getresponse()
            return response.status, response.read(), response.getheaders()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply, reply_headers = proxy.answer(self.path, body, dict(self.headers.items()))
                self.send_response(status)
                for name, value in reply_headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


#: S3's answer to a request rate past a prefix's limit (its error reference: 503 SlowDown).
S3_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>slowed</RequestId>"
    b"<HostId>slowed</HostId></Error>"
)


class S3SlowingDown:
    """An S3 endpoint that answers every request as S3 does when it sheds load: 503 SlowDown, counted."""

    def __init__(self) -> None:
        self.refused: Counter[str] = Counter()
        self._server = serving(self._handler())

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _slow_down(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.refused[self.command] += 1
                body = b"" if self.command == "HEAD" else S3_SLOW_DOWN
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        for verb in ("GET", "PUT", "HEAD", "POST", "DELETE"):  # http.server serves do_<VERB>
            setattr(Handler, f"do_{verb}", Handler._slow_down)
        return Handler
