"""Bearer-token authentication the way EKS does it: an STS GetCallerIdentity URL presigned for this cluster.

The token is ``k8s-aws-v1.`` + base64url (no padding) of the presigned URL. We check its shape as
aws-iam-authenticator's pkg/token does (at most 4096 bytes, Go's RawURLEncoding: the URL alphabet and no
padding, the same messages), verify its SigV4 signature over ``host`` and ``x-k8s-aws-id: <cluster>``
(the check STS performs when EKS calls it; moto does not verify signatures, so we do it here with the
access key's secret), then call the URL against the local STS and take the caller's ARN from the reply.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_VALIDITY_SECONDS = 15 * 60
MAX_TOKEN_BYTES = 4096
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
GO_DATE_FORMAT = "20060102T150405Z"  # how the authenticator's messages name it
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
CACHE_SECONDS = 120
_ALLOWED_PARAMETERS = {
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
}
DEFAULT_SECRETS = {"testing": "testing"}


class TokenRejectedError(Exception):
    """Why a token fails; the client only ever sees ``401 Unauthorized``."""


@dataclass(frozen=True)
class Identity:
    """The caller STS reported for a token."""

    arn: str
    account: str
    user_id: str


class TokenVerifier:
    """Verifies EKS tokens for one cluster against one STS endpoint; caches successes for two minutes."""

    def __init__(
        self, cluster_name: str, sts_endpoint_url: str, secrets: Mapping[str, str] | None = None
    ) -> None:
        self.cluster_name = cluster_name
        self.sts_endpoint = urllib.parse.urlsplit(sts_endpoint_url)
        self._secrets = dict(DEFAULT_SECRETS if secrets is None else secrets)
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Identity:
        url, params = self._parse(token)
        issued = _issued_at(params)
        now = time.time()
        if now > issued + TOKEN_VALIDITY_SECONDS:
            stamp = datetime.datetime.fromtimestamp(issued, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M:%S +0000 UTC"
            )
            raise TokenRejectedError(f"X-Amz-Date parameter is expired (15 minute expiration) {stamp}")
        with self._lock:
            cached = self._cache.get(token)
        if cached and cached[0] > now:
            return cached[1]
        self._check_signature(url, params)
        identity = self._call_sts(url, params)
        with self._lock:
            self._cache[token] = (now + CACHE_SECONDS, identity)
        return identity

    def _parse(self, token: str) -> tuple[urllib.parse.SplitResult, dict[str, str]]:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejectedError("token is too large")
        if not token.startswith(TOKEN_PREFIX):
            raise TokenRejectedError('token is missing expected "k8s-aws-v1." prefix')
        raw = _raw_url_base64(token[len(TOKEN_PREFIX) :])
        url = urllib.parse.urlsplit(raw)
        if url.scheme != self.sts_endpoint.scheme:  # "https" on AWS; the local STS speaks http
            raise TokenRejectedError(f'unexpected scheme "{url.scheme}" in pre-signed URL')
        if url.netloc != self.sts_endpoint.netloc:
            raise TokenRejectedError(f'unexpected hostname "{url.netloc}" in pre-signed URL')
        if url.path != "/":
            raise TokenRejectedError("unexpected path in pre-signed URL")
        params: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            lower = key.lower()
            if lower not in _ALLOWED_PARAMETERS:
                raise TokenRejectedError(f'non-whitelisted query parameter "{key}"')
            if lower in params:
                raise TokenRejectedError("query parameter with multiple values not supported")
            params[lower] = value
        if params.get("action") != "GetCallerIdentity":
            raise TokenRejectedError("unexpected action parameter in pre-signed URL")
        if CLUSTER_ID_HEADER not in params.get("x-amz-signedheaders", "").lower().split(";"):
            raise TokenRejectedError(
                f"client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
            )
        try:
            expires = int(params.get("x-amz-expires", ""))
        except ValueError:
            expires = -1
            shown = 0  # Go's strconv.Atoi leaves 0 behind on failure, and the message prints it
        else:
            shown = expires
        if not 0 <= expires <= 900:
            raise TokenRejectedError(f"invalid X-Amz-Expires parameter in pre-signed URL: {shown}")
        if not params.get("x-amz-date"):
            raise TokenRejectedError("X-Amz-Date parameter must be present in pre-signed URL")
        return url, params

    def _check_signature(self, url: urllib.parse.SplitResult, params: dict[str, str]) -> None:
        """SigV4 over the URL with ``x-k8s-aws-id`` set to this cluster: a token for another cluster fails."""
        scope = params.get("x-amz-credential", "").split("/")
        if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request":
            raise TokenRejectedError("malformed X-Amz-Credential")
        access_key, date, region = scope[0], scope[1], scope[2]
        secret = self._secret_for(access_key)
        signed_headers = params["x-amz-signedheaders"].lower()
        header_values = {"host": url.netloc, CLUSTER_ID_HEADER: self.cluster_name}
        canonical_headers = "".join(
            f"{name}:{header_values.get(name, '')}\n" for name in signed_headers.split(";")
        )
        query = sorted(
            (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
            for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)
            if k != "X-Amz-Signature"
        )
        canonical_query = "&".join(f"{k}={v}" for k, v in query)
        canonical_request = "\n".join(
            ["GET", "/", canonical_query, canonical_headers, signed_headers, hashlib.sha256(b"").hexdigest()]
        )
        credential_scope = f"{date}/{region}/sts/aws4_request"
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                params["x-amz-date"],
                credential_scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        key = f"AWS4{secret}".encode()
        for part in (date, region, "sts", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("x-amz-signature", "")):
            raise TokenRejectedError(
                "SignatureDoesNotMatch: the request signature does not match "
                f"(token not signed for cluster {self.cluster_name!r} or bad credentials)"
            )

    def _secret_for(self, access_key: str) -> str:
        with self._lock:
            if access_key in self._secrets:
                return self._secrets[access_key]
        self._learn_secrets()
        with self._lock:
            if access_key not in self._secrets:
                raise TokenRejectedError(f"InvalidClientTokenId: unknown access key {access_key}")
            return self._secrets[access_key]

    def _learn_secrets(self) -> None:
        """Read the temporary and IAM user keys moto has issued, as STS knows them (localcloud/motoserver.py's
        access-keys.json)."""
        base = urllib.parse.urlunsplit((self.sts_endpoint.scheme, self.sts_endpoint.netloc, "", "", ""))
        try:
            with urllib.request.urlopen(f"{base}/moto-api/access-keys.json", timeout=10) as response:
                found = json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return
        with self._lock:
            self._secrets.update(found)

    def _call_sts(self, url: urllib.parse.SplitResult, params: dict[str, str]) -> Identity:
        """GET the presigned URL with the cluster header, as the authenticator does."""
        # moto routes unsigned requests by the Authorization header's credential scope; a presigned URL
        # carries that scope in X-Amz-Credential, so it is copied into a routing-only header.
        headers = {
            CLUSTER_ID_HEADER: self.cluster_name,
            "Accept": "application/json",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={params['x-amz-credential']}, "
            f"SignedHeaders={params['x-amz-signedheaders']}, Signature={params.get('x-amz-signature', '')}",
        }
        request = urllib.request.Request(urllib.parse.urlunsplit(url), headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise TokenRejectedError(f"error from AWS (expected 200, got {error.code})") from None
        except (urllib.error.URLError, OSError) as error:
            raise TokenRejectedError(f"error during GET: {error}") from None
        return _identity_from(body)


def _raw_url_base64(encoded: str) -> str:
    """Go's ``base64.RawURLEncoding.DecodeString``: URL alphabet only, no padding; the error names the
    first byte it cannot take."""
    for index, char in enumerate(encoded):
        if char not in _BASE64URL:
            raise TokenRejectedError(f"illegal base64 data at input byte {index}")
    if len(encoded) % 4 == 1:
        raise TokenRejectedError(f"illegal base64 data at input byte {len(encoded) - 1}")
    # Bytes as they are (Go strings need not be UTF-8): a URL of garbage then fails the scheme or host check.
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("latin-1")


def _issued_at(params: dict[str, str]) -> float:
    date = params["x-amz-date"]
    try:
        moment = datetime.datetime.strptime(date, DATE_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError as error:
        raise TokenRejectedError(
            f"error parsing X-Amz-Date parameter {date} into format {GO_DATE_FORMAT}: {error}"
        ) from None
    return moment.timestamp()


def _identity_from(body: bytes) -> Identity:
    try:
        if body.lstrip().startswith(b"{"):
            result = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            return Identity(result["Arn"], result["Account"], result["UserId"])
        root = ElementTree.fromstring(body)
        values = {element.tag.rsplit("}", 1)[-1]: element.text or "" for element in root.iter()}
        return Identity(values["Arn"], values["Account"], values["UserId"])
    except (KeyError, ValueError, ElementTree.ParseError):
        raise TokenRejectedError("unexpected GetCallerIdentity response") from None
