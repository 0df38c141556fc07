"""A check run every tenth of a second on its own thread, so a slow or failing upload never delays it."""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger

CHECK_SECONDS = 0.1


class PeriodicCheck:
    """Runs ``enforce`` until ``stop``; a failed check is logged and the next one tries again."""

    def __init__(self, name: str, logger: Logger) -> None:
        self._name = name
        self._logger = logger
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def enforce(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.wait(CHECK_SECONDS):
            try:
                self.enforce()
            except OSError as error:
                self._logger.warning(f"{self._name} check failed", extra={"error": str(error)})
