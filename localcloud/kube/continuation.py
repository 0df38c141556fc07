"""List continuation tokens as the API server writes them: base64url JSON of the list's resourceVersion
and the key to start from."""

from __future__ import annotations

import base64
import json

from localcloud.kube.status import bad_request


def encode_continue(revision: str, last_key: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": int(revision), "start": last_key + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continue(token: str) -> str:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = decoded["start"]
        if decoded.get("v") != "meta.k8s.io/v1" or not isinstance(start, str):
            raise ValueError(token)
        return start
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None
