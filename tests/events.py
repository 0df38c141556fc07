"""Sample events from events/, for tests: load one by name, or list the names of one kind."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


@cache
def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json`` (``invalid/<name>`` for the invalid ones), free to modify."""
    return copy.deepcopy(_read(name))


def event_names(prefix: str = "", folder: str = "") -> list[str]:
    """Names (no .json) of the sample events in ``events/<folder>`` whose file names start with ``prefix``."""
    base = EVENTS_DIR / folder
    return sorted(f"{folder}/{p.stem}" if folder else p.stem for p in base.glob(f"{prefix}*.json"))
