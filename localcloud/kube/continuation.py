"""List continuation tokens as the API server writes them (base64url JSON of the list's resourceVersion and
the key to start from), and the 410 it answers once etcd has compacted that resourceVersion away."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from localcloud.kube.status import ApiError, bad_request

#: k8s.io/apiserver storage/etcd3: the continue token of a compacted revision (handleCompactedErrorForPaging).
INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
LATEST = -1  # a token's resourceVersion that continues at the latest revision


@dataclass(frozen=True)
class Continuation:
    """Where a list resumes, and at which revision it started (``LATEST``: whatever is current)."""

    revision: int
    start: str


def encode_continue(revision: str, last_key: str) -> str:
    return _encode(int(revision), last_key + "\x00")


def _encode(revision: int, start: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": revision, "start": start}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continue(token: str) -> Continuation:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = decoded["start"]
        if decoded.get("v") != "meta.k8s.io/v1" or not isinstance(start, str):
            raise ValueError(token)
        return Continuation(int(decoded.get("rv") or 0), start)
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


def expired(continuation: Continuation) -> ApiError:
    """410 Expired, carrying a token that resumes at the latest revision (the remainder may then be
    inconsistent, as the message says)."""
    fresh = _encode(LATEST, continuation.start)
    return ApiError(410, "Expired", INCONSISTENT_CONTINUE, list_meta={"continue": fresh})


def check_not_compacted(continuation: Continuation, compacted: int) -> None:
    """A token from before the last compaction has expired."""
    if continuation.revision != LATEST and continuation.revision < compacted:
        raise expired(continuation)
