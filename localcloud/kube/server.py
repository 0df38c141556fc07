"""The HTTPS front: routes REST paths to verbs, after authentication, faults and authorization."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localcloud.kube.access import EksAccessEntries, UnmappedPrincipalError, User
from localcloud.kube.auth import TokenRejectedError, TokenVerifier
from localcloud.kube.authorization import Attributes, Authorizer, forbidden
from localcloud.kube.continuation import decode_continue, expired
from localcloud.kube.discovery import discovery_document, openapi_v3
from localcloud.kube.escalation import RBAC_TYPES, confirm_no_escalation
from localcloud.kube.faults import CallCounter, Faults
from localcloud.kube.fieldvalidation import (
    OPTIONS_KIND,
    STRICT,
    WARN,
    check,
    directive,
    parse,
    refusal,
    warning_header,
)
from localcloud.kube.impersonation import impersonate
from localcloud.kube.patches import apply_patch
from localcloud.kube.protobuf import PROTOBUF, decode_review, unsupported
from localcloud.kube.registry import DeleteOptions, ListPage, Registry
from localcloud.kube.resources import SUBRESOURCES, ResourceType, resource_at
from localcloud.kube.reviews import review
from localcloud.kube.selectors import parse_field_selector, parse_label_selector
from localcloud.kube.status import (
    ApiError,
    bad_request,
    internal_error,
    method_not_allowed,
    unauthorized,
)
from localcloud.kube.watches import MAX_WATCH_SECONDS, watch_events

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-eks-emulator",
    "platform": "linux/amd64",
}
LogReader = Callable[[dict[str, Any], str | None], str]


@dataclass
class ApiServer:
    """Everything a request touches."""

    registry: Registry
    verifier: TokenVerifier
    access: EksAccessEntries
    authorizer: Authorizer
    faults: Faults
    calls: CallCounter
    read_log: LogReader
    auth_failures: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Route:
    """A parsed REST path."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str

    def resource(self) -> str:
        return f"{self.rtype.plural}/{self.subresource}" if self.subresource else self.rtype.plural


def parse_route(path: str) -> Route | None:
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rtype = resource_at(group, version, rest[0])
    if rtype is None or (namespace is not None and not rtype.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and subresource not in SUBRESOURCES.get(rtype.plural, set()):
        return None
    return Route(rtype, namespace, name, subresource)


def _verb(method: str, route: Route, query: dict[str, str]) -> str:
    if method == "GET":
        if route.name is None:
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return "get"
    if method == "DELETE":
        return "delete" if route.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _list_body(route: Route, page: ListPage) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": page.resource_version}
    if page.continue_token:
        metadata["continue"] = page.continue_token
    if page.remaining is not None:
        metadata["remainingItemCount"] = page.remaining
    items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in page.items]
    return {
        "kind": f"{route.rtype.kind}List",
        "apiVersion": route.rtype.api_version,
        "metadata": metadata,
        "items": items,
    }


def _delete_options(query: dict[str, str], body: Any) -> DeleteOptions:
    options = body if isinstance(body, dict) else {}
    grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
    policy = options.get("propagationPolicy") or query.get("propagationPolicy")
    orphan = options.get("orphanDependents", query.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if str(orphan).lower() == "true" else "Background"
    preconditions = options.get("preconditions") or {}
    try:
        grace_seconds = None if grace is None else int(grace)
    except ValueError:
        raise bad_request(f"invalid gracePeriodSeconds {grace!r}") from None
    return DeleteOptions(
        grace_seconds, policy, preconditions.get("uid"), preconditions.get("resourceVersion")
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the call counter is the record."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        api = self.server.api
        api.registry.admission.begin_request()
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path in ("/version", "/healthz", "/livez", "/readyz"):
            self._send(200, VERSION if url.path == "/version" else "ok")
            return
        document = discovery_document(url.path) or openapi_v3(url.path)
        if document is not None:
            self._serve_document(api, method, url.path, document)
            return
        route = parse_route(url.path)
        if route is None:
            self._send_error(
                ApiError(404, "NotFound", "the server could not find the requested resource", {})
            )
            return
        verb = _verb(method, route, query)
        resource = route.resource()
        warnings: list[str] = []
        api.calls.record(verb, resource)
        delay = api.faults.latency(verb, resource)
        if delay:
            time.sleep(delay)
        try:
            user = self._authenticate(api)
            fault = api.faults.pick(verb, resource)
            if fault is not None:
                if fault.status is None:
                    time.sleep(fault.stall_seconds)
                    self._drop()
                    return
                raise fault.error(verb, resource)
            request = Attributes(
                user,
                verb,
                route.rtype.group,
                route.rtype.plural,
                route.subresource,
                route.name or "",
                route.namespace or "",
            )
            decision = api.authorizer.decide(request)
            if not decision.allowed:
                raise forbidden(request, decision.reason)
            if verb == "watch":
                self._watch(api, route, query)
                return
            body = self._body(route.rtype, raw_body)
            if route.rtype.stored and verb in OPTIONS_KIND and body is not None:
                body, warnings = self._validate_fields(api, verb, route, query, raw_body, body)
                self._confirm_no_escalation(api, user, verb, route, body)
            if not route.rtype.stored:
                if verb != "create":
                    raise method_not_allowed(f"{verb} of {route.rtype.plural} is not supported")
                status, payload = 201, review(route.rtype, body, user, api.authorizer)
            else:
                status, payload = self._dispatch(api, method, verb, route, query, body)
        except ApiError as error:
            self._send_error(error, warnings + api.registry.admission.recorded_warnings())
            return
        except json.JSONDecodeError as error:
            self._send_error(bad_request(f"the body of the request is not valid JSON: {error}"))
            return
        except Exception as error:
            self._send_error(internal_error(repr(error)))
            return
        self._send(status, payload, warnings=warnings + api.registry.admission.recorded_warnings())

    def _body(self, rtype: ResourceType, raw_body: bytes) -> Any:
        """The request's object: JSON, or protobuf for an access review (kubectl auth can-i sends that)."""
        if not raw_body:
            return None
        if self.headers.get("Content-Type", "").startswith(PROTOBUF):
            if rtype.stored:
                raise unsupported()
            return decode_review(raw_body, rtype.kind)
        return parse(raw_body)

    def _confirm_no_escalation(self, api: ApiServer, user: User, verb: str, route: Route, body: Any) -> None:
        """A role or binding as it would be written, checked against what its writer holds."""
        if route.rtype not in RBAC_TYPES or route.subresource:
            return
        target = body
        if verb == "patch":
            stored = api.registry.get(route.rtype, route.namespace, route.name or "")
            target = apply_patch(self.headers.get("Content-Type", ""), stored, body)
        if isinstance(target, dict):
            confirm_no_escalation(api.authorizer, user, route.rtype, route.namespace, target)

    def _validate_fields(
        self, api: ApiServer, verb: str, route: Route, query: dict[str, str], raw_body: bytes, body: Any
    ) -> tuple[Any, list[str]]:
        """The body without unknown fields, and the warnings to send (Warn); Strict refuses instead."""
        mode = directive(verb, query)
        content_type = self.headers.get("Content-Type", "") if verb == "patch" else ""
        cleaned, findings = check(route.rtype, body, content_type)
        if findings.errors and mode == STRICT:
            stored = None
            if verb == "patch":  # the real patch handler reads the object first: a 404 comes before
                stored = api.registry.get(route.rtype, route.namespace, route.name or "")
            raise refusal(route.rtype, verb, raw_body, body, findings, content_type, stored)
        return cleaned, findings.errors if mode == WARN else []

    def _serve_document(self, api: ApiServer, method: str, path: str, document: dict[str, Any]) -> None:
        """A discovery or OpenAPI document: read-only, for callers allowed its path (system:discovery)."""
        try:
            request = Attributes(self._authenticate(api), method.lower(), path=path)
            decision = api.authorizer.decide(request)
            if not decision.allowed:
                raise forbidden(request, decision.reason)
            if method != "GET":
                raise method_not_allowed(f"{method} is not supported")
        except ApiError as error:
            self._send_error(error)
            return
        self._send(200, document)

    def _authenticate(self, api: ApiServer) -> User:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            api.auth_failures.append("no bearer token")
            raise unauthorized()
        try:
            identity = api.verifier.verify(header[len("Bearer ") :].strip())
        except TokenRejectedError as rejected:
            api.auth_failures.append(str(rejected))
            raise unauthorized() from None
        try:
            user = api.access.user_for(identity)
        except UnmappedPrincipalError as unmapped:
            api.auth_failures.append(str(unmapped))
            raise unauthorized() from None
        groups = [group.strip() for group in self.headers.get_all("Impersonate-Group") or []]
        username = self.headers.get("Impersonate-User", "")
        return impersonate(user, username, groups, api.authorizer)

    def _dispatch(
        self, api: ApiServer, method: str, verb: str, route: Route, query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        registry, rtype, ns, name = api.registry, route.rtype, route.namespace, route.name
        if verb == "list":
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(rtype.plural, query.get("fieldSelector", ""))
            limit = int(query.get("limit") or 0)
            if query.get("continue") and api.faults.compaction_due(rtype.plural):
                raise expired(decode_continue(query["continue"]))
            page = registry.list_page(rtype, ns, labels, fields, limit, query.get("continue", ""))
            return 200, _list_body(route, page)
        if rtype.namespaced and ns is None and verb not in ("list", "watch"):
            raise method_not_allowed(f"{verb} of {rtype.plural} needs a namespace")
        if verb == "get":
            obj = registry.get(rtype, ns, name or "")
            if route.subresource == "log":
                return 200, api.read_log(obj, query.get("container"))
            return 200, obj
        if verb == "create":
            if name is not None:
                raise method_not_allowed("POST to a named resource")
            return 201, registry.create(rtype, ns, body, keep_status=False)
        if verb == "update":
            return 200, registry.update(rtype, ns, name or "", body, route.subresource)
        if verb == "patch":
            return 200, registry.patch(
                rtype, ns, name or "", self.headers.get("Content-Type", ""), body, route.subresource
            )
        if verb == "delete":
            obj, present = registry.delete(rtype, ns, name or "", _delete_options(query, body))
            if present or rtype.returns_deleted_object:
                return 200, obj
            details: dict[str, Any] = {
                "name": obj["metadata"]["name"],
                "kind": rtype.plural,
                "uid": obj["metadata"]["uid"],
            }
            if rtype.group:
                details["group"] = rtype.group
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        if verb == "deletecollection":
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(rtype.plural, query.get("fieldSelector", ""))
            deleted = registry.delete_collection(rtype, ns, labels, fields, _delete_options(query, body))
            page = ListPage(deleted, str(registry.store.revision), None, None)
            return 200, _list_body(route, page)
        raise method_not_allowed(f"{method} is not supported")

    def _watch(self, api: ApiServer, route: Route, query: dict[str, str]) -> None:
        """Stream events as chunked JSON lines until ``timeoutSeconds`` (or the client hangs up)."""
        events = watch_events(
            api.registry,
            route.rtype,
            route.namespace,
            parse_label_selector(query.get("labelSelector", "")),
            parse_field_selector(route.rtype.plural, query.get("fieldSelector", "")),
            query.get("resourceVersion", ""),
            float(query.get("timeoutSeconds") or MAX_WATCH_SECONDS),
            api.stopping,
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True

    def _send(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload, separators=(",", ":")).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        for warning in dict.fromkeys(warnings or []):  # the server's recorder drops repeats
            self.send_header("Warning", warning_header(warning))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: ApiError, warnings: list[str] | None = None) -> None:
        self._send(error.code, error.body(), error.headers, warnings)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], api: ApiServer, tls: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.tls = tls

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (mid-handshake, or as a pool discards a connection) are not errors."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket.socket, Any]:
        raw, address = super().get_request()
        # The handshake runs lazily in the handler's thread, so a slow client never blocks accept().
        return self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False), address


class HttpsFront:
    """The listening HTTPS server on its own thread."""

    def __init__(
        self, api: ApiServer, cert_file: str, key_file: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = _Server((host, port), api, context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kube-apiserver",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.api.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
