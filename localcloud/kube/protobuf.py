"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl sends that way.

kubectl's typed clients send ``application/vnd.kubernetes.protobuf``; of the requests this emulator
serves, only the access reviews (``kubectl auth can-i``) come that way. The body is the magic
``k8s\\0`` and a ``runtime.Unknown`` (typeMeta, raw) whose ``raw`` is the object in the field numbers
of k8s.io/api/authorization/v1/generated.proto. Answers go back as JSON, which the client also accepts.
"""

from __future__ import annotations

from typing import Any

from localcloud.kube.status import ApiError

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
Fields = dict[int, list[Any]]

# generated.proto field numbers -> JSON names; a nested message is (name, its own table).
_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}
_SPEC: dict[int, Any] = {
    1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
    3: "user",
    4: "groups",
    6: "uid",
}
_REVIEW: dict[int, Any] = {2: ("spec", _SPEC)}
REPEATED = {"groups"}


def unsupported() -> ApiError:
    """415 as the API server answers a body it cannot decode (here: protobuf of any other kind)."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml",
    )


def _varint(data: bytes, index: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if index >= len(data):
            raise ValueError("truncated varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7


def fields(data: bytes) -> Fields:
    """A message's fields: number -> values (ints for varints, bytes for length-delimited)."""
    found: Fields = {}
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, index = _varint(data, index)
        elif wire == 2:
            length, index = _varint(data, index)
            value, index = data[index : index + length], index + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, index = data[index : index + size], index + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _message(data: bytes, table: dict[int, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for number, values in fields(data).items():
        entry = table.get(number)
        if entry is None:
            continue
        if isinstance(entry, tuple):
            name, nested = entry
            decoded[name] = _message(values[-1], nested)
        elif entry in REPEATED:
            decoded[entry] = [v.decode() for v in values]
        else:
            decoded[entry] = values[-1].decode()
    return decoded


def decode_review(body: bytes, kind: str) -> dict[str, Any]:
    """An access review sent as protobuf, as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise unsupported()
    try:
        unknown = fields(body[len(MAGIC) :])
        type_meta = fields(unknown[1][-1]) if 1 in unknown else {}
        sent_kind = type_meta.get(2, [b""])[-1].decode()
        if sent_kind != kind:
            raise unsupported()
        review = _message(unknown[2][-1], _REVIEW)
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        raise ApiError(400, "BadRequest", "the protobuf body of the request could not be decoded") from None
    return {"kind": kind, "apiVersion": type_meta.get(1, [b""])[-1].decode(), **review}
