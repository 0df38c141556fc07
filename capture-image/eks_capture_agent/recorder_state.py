"""What the recorder has done, kept in the spool so a restarted recorder container carries on.

The capture ids it served (the last SERVED_KEPT), and each open window as far as it got: the seq each file
was given, the attempts not yet confirmed, the files uploaded and dropped. A recorder that restarted
mid-window and numbered the window's files afresh would write a file under a second key, or another file's
bytes under a key S3 already holds; one that forgot its uploads would leave objects out of the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger

from eks_capture_agent.ledger import DroppedFile, UploadedFile
from eks_capture_agent.recorder_windows import Attempt, Window, WindowRequest
from eks_capture_agent.spool import Spool

STATE = ".recorder-state.json"
SERVED_KEPT = 200


def window_state(window: Window) -> dict[str, Any]:
    """A window as JSON."""
    document = asdict(window)
    document["wanted"] = sorted(window.wanted)
    return document


def window_from_state(document: Mapping[str, Any]) -> Window:
    """The window ``window_state`` wrote."""
    return Window(
        request=WindowRequest(**document["request"]),
        received_at=float(document["received_at"]),
        wanted={str(name) for name in document["wanted"]},
        uploaded={str(name): UploadedFile(**item) for name, item in document["uploaded"].items()},
        dropped=[DroppedFile(**item) for item in document["dropped"]],
        errors=[str(item) for item in document["errors"]],
        notes=[str(item) for item in document["notes"]],
        seqs={str(name): int(seq) for name, seq in document["seqs"].items()},
        attempted={str(name): Attempt(**item) for name, item in document["attempted"].items()},
    )


class RecorderState:
    """The served capture ids and the open windows, written atomically to the spool whenever they change."""

    def __init__(self, spool: Spool, logger: Logger) -> None:
        self._spool = spool
        self._logger = logger
        self._written = spool.read_json(STATE) or {}
        self.served: list[str] = [str(item) for item in self._written.get("served", [])]
        #: The windows open when the previous recorder stopped, by capture id.
        self.open: dict[str, Window] = {
            str(capture_id): window_from_state(document)
            for capture_id, document in self._written.get("windows", {}).items()
        }

    def mark_served(self, capture_id: str) -> None:
        self.served = [*self.served, capture_id][-SERVED_KEPT:]

    def save(self, windows: Mapping[str, Window]) -> bool:
        """Write the state if it changed; False when the spool would not take it (the caller decides)."""
        document = {
            "served": self.served,
            "windows": {key: window_state(item) for key, item in windows.items()},
        }
        if document == self._written:
            return True
        try:
            self._spool.write_json(STATE, document)
        except OSError as error:
            self._logger.warning(
                "could not keep the recorder's state in the spool", extra={"error": str(error)}
            )
            return False
        self._written = document
        return True
