"""The one seam to EKS: token from the process's own AWS credentials, endpoint and CA, API client factory.

Settings (environment, for the local cloud or private endpoints; unset in production):
``EKS_ENDPOINT_OVERRIDE`` and ``EKS_CA_OVERRIDE_FILE`` replace the endpoint and CA that
eks:DescribeCluster returns. Each is either one value for every cluster or ``name=value`` pairs
separated by commas (``prod=https://...,stage=https://...``). DescribeCluster is still called, so a
missing cluster or a missing eks:DescribeCluster permission fails the same way with or without them.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import urllib3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.util.retry import Retry

from eks_capture.errors import (
    ApiThrottled,
    ClusterAccessDenied,
    ClusterNotFound,
    ClusterRefused,
    ClusterUnreachable,
)
from eks_capture.kube.refusals import api_message, refused_by

logger = Logger(child=True)

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60
TOKEN_LIFETIME_SECONDS = 14 * 60
REFRESH_MARGIN_SECONDS = 60
DEFAULT_POOL_SIZE = 32
DEFAULT_ATTEMPTS = 6
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Production's backoff: the first wait (KUBE_RETRY_BACKOFF_MS, settings.py), doubling, capped at 25 of them.
BACKOFF_FACTOR_SECONDS = 0.2
BACKOFF_MAX_FACTORS = 25
#: Per attempt: to connect, and to wait for the answer's next bytes. A stalled call then fails like a
#: dropped one and the retry policy takes it again (worst_call_seconds() stays under every caller's timeout).
REQUEST_TIMEOUT = (3.0, 12.0)


@dataclass(frozen=True)
class EksToken:
    """A bearer token and when to stop using it (EKS accepts it for 15 minutes after signing)."""

    value: str
    expires_at: float

    def fresh(self, now: float | None = None) -> bool:
        """Whether it stays valid for at least the refresh margin."""
        return (time.time() if now is None else now) < self.expires_at - REFRESH_MARGIN_SECONDS


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where a cluster's API server is and the CA that signs its certificate."""

    name: str
    endpoint: str
    ca_pem: str


@dataclass(frozen=True)
class EndpointOverrides:
    """``EKS_ENDPOINT_OVERRIDE`` / ``EKS_CA_OVERRIDE_FILE``: per-cluster (or all-cluster) replacements."""

    endpoints: Mapping[str, str]
    ca_files: Mapping[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EndpointOverrides:
        env = os.environ if environ is None else environ
        return cls(_pairs(env.get("EKS_ENDPOINT_OVERRIDE", "")), _pairs(env.get("EKS_CA_OVERRIDE_FILE", "")))

    def apply(self, cluster: ClusterEndpoint) -> ClusterEndpoint:
        endpoint = self.endpoints.get(cluster.name, self.endpoints.get("*", cluster.endpoint))
        ca_file = self.ca_files.get(cluster.name, self.ca_files.get("*"))
        ca_pem = cluster.ca_pem
        if ca_file:
            with open(ca_file, encoding="ascii") as handle:
                ca_pem = handle.read()
        return ClusterEndpoint(cluster.name, endpoint, ca_pem)


def _pairs(text: str) -> dict[str, str]:
    """``value`` -> {"*": value}; ``a=x,b=y`` -> {"a": "x", "b": "y"}."""
    text = text.strip()
    if not text:
        return {}
    if "=" not in text.split(",")[0]:
        return {"*": text}
    return {
        name.strip(): value.strip()
        for name, _, value in (item.partition("=") for item in text.split(",") if item)
    }


_endpoints: dict[tuple[str, str], ClusterEndpoint] = {}
_clients: dict[tuple[str, str, str, str], client.ApiClient] = {}
_cache_lock = threading.Lock()
_default_session: list[boto3.Session] = []


def _session(session: boto3.Session | None) -> boto3.Session:
    """The given session, or one shared default (a new Session reloads every service model: slow)."""
    if session is not None:
        return session
    with _cache_lock:
        if not _default_session:
            _default_session.append(boto3.Session())
        return _default_session[0]


def generate_token(cluster_name: str, session: boto3.Session | None = None) -> EksToken:
    """``k8s-aws-v1.`` + base64url(presigned sts:GetCallerIdentity signing ``x-k8s-aws-id: <cluster>``)."""
    sts = _session(session).client("sts")

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster_name

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    signed_at = time.time()
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=PRESIGN_SECONDS, HttpMethod="GET")
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return EksToken(TOKEN_PREFIX + encoded, signed_at + TOKEN_LIFETIME_SECONDS)


class TokenSource:
    """The current token for a cluster, re-signed shortly before it expires; safe across threads."""

    def __init__(self, cluster_name: str, session: boto3.Session | None = None) -> None:
        self.cluster_name = cluster_name
        self._session = session
        self._lock = threading.Lock()
        self._token: EksToken | None = None

    def current(self) -> EksToken:
        with self._lock:
            if self._token is None or not self._token.fresh():
                self._token = generate_token(self.cluster_name, self._session)
                logger.debug("signed a new EKS token", extra={"cluster": self.cluster_name})
            return self._token


def describe_cluster(cluster_name: str, session: boto3.Session | None = None) -> ClusterEndpoint:
    """Endpoint and CA from eks:DescribeCluster (cached for the process's life), overrides applied."""
    session = _session(session)
    key = (cluster_name, session.region_name or "")
    with _cache_lock:
        cached = _endpoints.get(key)
    if cached is None:
        try:
            cluster = session.client("eks").describe_cluster(name=cluster_name)["cluster"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise ClusterNotFound(cluster_name) from None
            if code in ("AccessDeniedException", "UnauthorizedOperation"):
                raise ClusterAccessDenied(
                    cluster_name, "IAM permission eks:DescribeCluster on the cluster"
                ) from None
            if code in ("ThrottlingException", "TooManyRequestsException"):
                raise ApiThrottled("eks", "DescribeCluster", 1) from None
            raise
        ca_data = cluster.get("certificateAuthority", {}).get("data", "")
        try:
            ca_pem = base64.b64decode(ca_data).decode()
        except ValueError:
            ca_pem = ""
        cached = ClusterEndpoint(cluster_name, cluster.get("endpoint", ""), ca_pem)
        with _cache_lock:
            _endpoints[key] = cached
        logger.info("described EKS cluster", extra={"cluster": cluster_name, "endpoint": cached.endpoint})
    return EndpointOverrides.from_env().apply(cached)


class KubeRetry(Retry):
    """urllib3 retries as client-go does: idempotent verbs on 5xx and dropped connections, any verb on 429.

    A 429 means the API server did not act on the request, so even a POST may be repeated; the
    Retry-After header sets the wait.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return self.total is None or self.total > 0
        return bool(super().is_retry(method, status_code, has_retry_after))


def retry_policy(attempts: int = DEFAULT_ATTEMPTS, backoff: float = BACKOFF_FACTOR_SECONDS) -> KubeRetry:
    """Up to ``attempts`` tries with exponential backoff (``backoff`` seconds doubling, at most 25 times
    ``backoff``: 0.2 s to 5 s in production) or Retry-After."""
    return KubeRetry(
        total=attempts - 1,
        connect=attempts - 1,
        read=attempts - 1,
        status=attempts - 1,
        backoff_factor=backoff,
        backoff_max=backoff * BACKOFF_MAX_FACTORS,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=IDEMPOTENT_METHODS,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def worst_call_seconds(
    timeout: tuple[float, float] = REQUEST_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = BACKOFF_FACTOR_SECONDS,
) -> float:
    """How long one call can take before it gives up: every attempt stalled to its timeouts, and the
    backoff between them (a Retry-After of a 429 aside)."""
    waits = sum(min(backoff * BACKOFF_MAX_FACTORS, backoff * 2.0**n) for n in range(attempts - 1))
    return float(attempts * (timeout[0] + timeout[1]) + waits)


def api_client(
    cluster_name: str,
    session: boto3.Session | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = BACKOFF_FACTOR_SECONDS,
) -> client.ApiClient:
    """A configured ApiClient for the cluster (cached per cluster/endpoint); share it across threads.

    The connection pool holds ``pool_size`` connections; more concurrent requests wait for one. Failed
    attempts are retried after ``backoff`` seconds, doubling (retry_policy).
    """
    endpoint = describe_cluster(cluster_name, session)
    credentials = _session(session).get_credentials()
    principal = credentials.access_key if credentials else ""
    key = (cluster_name, endpoint.endpoint, endpoint.ca_pem, f"{principal}/{pool_size}/{attempts}/{backoff}")
    with _cache_lock:
        if key in _clients:
            return _clients[key]
    tokens = TokenSource(cluster_name, session)
    configuration = client.Configuration()
    configuration.host = endpoint.endpoint.rstrip("/")
    configuration.verify_ssl = True
    configuration.ca_cert_data = endpoint.ca_pem
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = retry_policy(attempts, backoff)
    configuration.api_key_prefix = {"authorization": "Bearer"}

    def refresh(config: client.Configuration) -> None:
        config.api_key["authorization"] = tokens.current().value

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
    configuration.api_key = {"authorization": tokens.current().value}
    api = client.ApiClient(configuration)
    # Block rather than open (and then discard) connections beyond the pool: the pool bounds concurrency.
    api.rest_client.pool_manager.connection_pool_kw["block"] = True
    with _cache_lock:
        _clients[key] = api
    return api


def clear_caches() -> None:
    """Forget cached endpoints and clients (tests that recreate clusters; a new container does this)."""
    with _cache_lock:
        _endpoints.clear()
        for api in _clients.values():
            api.close()  # type: ignore[no-untyped-call]
        _clients.clear()


def access_error(
    cluster_name: str,
    error: ApiException,
    operation: str,
    principal: str | None = None,
    session: boto3.Session | None = None,
) -> Exception:
    """The domain error for an API failure: access denied, throttled, unreachable; others unchanged.

    A 401 names ``principal`` (default: the IAM principal of ``session``, the one that called, asked of
    STS; no session: this process's) in its hint. The API server answers every authentication failure
    with the same 401 "Unauthorized": an unknown principal, but also a token it could not verify (expired,
    a skewed clock, STS unreachable from the authenticator), so the message says both.
    """
    if error.status == 401:
        principal = principal or _principal_arn(session)
        return ClusterAccessDenied(
            cluster_name,
            f"the cluster did not authenticate IAM principal {principal} (401 Unauthorized): no EKS access"
            f" entry accepts it, or its token was refused (expired, or a skewed clock); to give it one: "
            f"aws eks create-access-entry --cluster-name {cluster_name} --principal-arn {principal}, "
            "or map it in aws-auth",
        )
    if error.status == 403:
        message = api_message(error)
        who = refused_by(403, message)
        if who != "RBAC":  # admission said no: the caller may do this, the cluster refuses what it asks
            return ClusterRefused(cluster_name, operation, 403, who, message)
        return ClusterAccessDenied(cluster_name, f"RBAC permission: {message}")
    if error.status == 429:
        return ApiThrottled("kubernetes", operation, DEFAULT_ATTEMPTS)
    if error.status >= 500:
        return ClusterUnreachable(cluster_name, operation, f"HTTP {error.status} {api_message(error)}")
    return error


def _principal_arn(session: boto3.Session | None) -> str:
    """The IAM principal of ``session`` (None: this process's) as an access entry names it (an assumed
    role as its role ARN)."""
    try:
        arn = str(_session(session).client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return "of this function"
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    return arn


@contextmanager
def kube_errors(cluster_name: str, operation: str, session: boto3.Session | None = None) -> Iterator[None]:
    """Turn API failures inside the block into domain errors (403 names the missing verb and resource, 401
    the principal of ``session``, the calls' credentials)."""
    try:
        yield
    except ApiException as error:
        mapped = access_error(cluster_name, error, operation, session=session)
        if mapped is error:
            raise
        raise mapped from error
    except urllib3.exceptions.HTTPError as error:
        raise ClusterUnreachable(cluster_name, operation, str(error)) from error
