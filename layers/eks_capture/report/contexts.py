"""A capture's cluster context (``captures/<cluster>/<id>/context.json.gz``) as IP -> names.

The context file is written by another part of the system and may grow; this reader is tolerant: any
entry under ``pods``, ``services`` or ``nodes`` (a list, or an object keyed by name) with a name and
address-like fields counts, everything else is ignored, and a missing or broken file means no names.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

SECTIONS = ("pods", "services", "nodes")
_NAME_KEYS = ("name", "pod", "service", "node")


def _addresses(value: Any) -> Iterable[str]:
    """Every IP address in a value (a string, a list of them, or objects holding them)."""
    if isinstance(value, str):
        try:
            yield str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return
    elif isinstance(value, list):
        for item in value:
            yield from _addresses(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if "ip" in str(key).lower() or "address" in str(key).lower():
                yield from _addresses(item)


def _name(entry: Mapping[str, Any], key: str | None) -> str | None:
    name = next((entry[k] for k in _NAME_KEYS if isinstance(entry.get(k), str) and entry[k]), key)
    if not name:
        return None
    namespace = entry.get("namespace")
    return f"{name}.{namespace}" if isinstance(namespace, str) and namespace else str(name)


def names_from_context(data: Any) -> dict[str, list[str]]:
    """IP address -> names (pods, then services, then nodes), from a parsed context document."""
    names: dict[str, list[str]] = {}
    if not isinstance(data, Mapping):
        return names
    for section in SECTIONS:
        entries = data.get(section)
        pairs: Iterable[tuple[str | None, Any]]
        if isinstance(entries, Mapping):
            pairs = entries.items()
        elif isinstance(entries, list):
            pairs = ((None, entry) for entry in entries)
        else:
            continue
        for key, entry in pairs:
            if not isinstance(entry, Mapping):
                continue
            name = _name(entry, key)
            if name is None:
                continue
            for address in _addresses({k: v for k, v in entry.items() if k not in _NAME_KEYS}):
                known = names.setdefault(address, [])
                if name not in known:
                    known.append(name)
    return names


def parse_context(raw: bytes) -> dict[str, list[str]]:
    """IP -> names from the context file's bytes (gzip or plain JSON); empty when unreadable."""
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return names_from_context(json.loads(raw))
    except (OSError, EOFError, zlib.error, ValueError):
        return {}


def first_names(names: Mapping[str, list[str]]) -> dict[str, str]:
    """IP -> one name, the form the analyzer's ``context`` takes."""
    return {address: found[0] for address, found in names.items() if found}
