"""The capture index table, spoken to in capture words: sessions, claims, files and notices over one table."""

from __future__ import annotations

from eks_capture.store.claims import Claims
from eks_capture.store.files import Files
from eks_capture.store.notices import Notices
from eks_capture.store.sessions import Sessions


class CaptureStore(Sessions, Claims, Files, Notices):
    """Every part of the store over one table and one client (the functions build one per container)."""
