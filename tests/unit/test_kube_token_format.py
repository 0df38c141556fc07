"""The emulated EKS refuses a malformed token as aws-iam-authenticator's pkg/token does, with its messages:
at most 4096 bytes, unpadded base64url, the expected STS URL, whitelisted parameters, a bounded expiry."""

from __future__ import annotations

import base64
import datetime
import time
import urllib.parse

import pytest

from localcloud.kube.auth import TOKEN_PREFIX, TokenRejectedError, TokenVerifier

STS = "http://127.0.0.1:5000"
PARAMETERS = {
    "Action": "GetCallerIdentity",
    "Version": "2011-06-15",
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": "AKIDEXAMPLE/20261205/us-west-2/sts/aws4_request",
    "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    "X-Amz-Expires": "60",
    "X-Amz-SignedHeaders": "host;x-k8s-aws-id",
    "X-Amz-Signature": "0" * 64,
}


def url(base: str = STS, **changes: str) -> str:
    return f"{base}/?{urllib.parse.urlencode({**PARAMETERS, **changes})}"


def token(presigned: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(presigned.encode()).decode().rstrip("=")


def rejection(candidate: str) -> str:
    verifier = TokenVerifier("demo", STS, secrets={})
    with pytest.raises(TokenRejectedError) as caught:
        verifier.verify(candidate)
    return str(caught.value)


AN_HOUR_AGO = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=1)
UNPADDED = token(url())
PADDED = UNPADDED + "=" * (-len(UNPADDED.removeprefix(TOKEN_PREFIX)) % 4 or 4)


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        pytest.param(TOKEN_PREFIX + "A" * 4086, "token is too large", id="one-byte-over-4096"),
        pytest.param(
            UNPADDED.removeprefix(TOKEN_PREFIX), 'token is missing expected "k8s-aws-v1." prefix', id="prefix"
        ),
        pytest.param(
            PADDED, f"illegal base64 data at input byte {len(UNPADDED) - len(TOKEN_PREFIX)}", id="padded"
        ),
        pytest.param(
            TOKEN_PREFIX + "aGVsbG8/d29ybGQ", "illegal base64 data at input byte 7", id="standard-alphabet"
        ),
        pytest.param(TOKEN_PREFIX + "aGVsb", "illegal base64 data at input byte 4", id="impossible-length"),
        pytest.param(
            token(url("https://127.0.0.1:5000")), 'unexpected scheme "https" in pre-signed URL', id="scheme"
        ),
        pytest.param(
            token(url("http://sts.evil.example")),
            'unexpected hostname "sts.evil.example" in pre-signed URL',
            id="host",
        ),
        pytest.param(token(url(Foo="bar")), 'non-whitelisted query parameter "Foo"', id="extra-parameter"),
        pytest.param(
            token(url(Action="AssumeRole")), "unexpected action parameter in pre-signed URL", id="action"
        ),
        pytest.param(
            token(url(**{"X-Amz-Expires": "soon"})),
            "invalid X-Amz-Expires parameter in pre-signed URL: 0",
            id="expires-not-a-number",
        ),
        pytest.param(
            token(url(**{"X-Amz-Expires": "901"})),
            "invalid X-Amz-Expires parameter in pre-signed URL: 901",
            id="expires-past-15-minutes",
        ),
        pytest.param(
            token(url(**{"X-Amz-Date": "2026-12-05"})),
            "error parsing X-Amz-Date parameter 2026-12-05 into format 20060102T150405Z",
            id="date-format",
        ),
        pytest.param(
            token(url(**{"X-Amz-Date": AN_HOUR_AGO.strftime("%Y%m%dT%H%M%SZ")})),
            "X-Amz-Date parameter is expired (15 minute expiration) "
            f"{AN_HOUR_AGO:%Y-%m-%d %H:%M:%S} +0000 UTC",
            id="date-older-than-15-minutes",
        ),
    ],
)
def test_a_malformed_token_is_refused_with_the_authenticators_message(candidate: str, message: str) -> None:
    if "expired" in message:
        assert datetime.datetime.now(datetime.UTC) > datetime.datetime(
            2026, 12, 5, 7, 15, tzinfo=datetime.UTC
        )
    assert rejection(candidate).startswith(message)


def test_a_token_of_exactly_4096_bytes_is_not_too_large() -> None:
    assert rejection(TOKEN_PREFIX + "A" * (4096 - len(TOKEN_PREFIX))) != "token is too large"


def test_a_well_formed_token_passes_the_format_checks_and_meets_the_signature_check() -> None:
    signed_now = token(url(**{"X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}))
    assert rejection(signed_now).startswith("InvalidClientTokenId")
