"""How long to wait before trying an upload again: exponential, capped, jittered."""

from __future__ import annotations

import random

BASE_SECONDS = 0.5
CAP_SECONDS = 10.0


def retry_delay(failures: int, rng: random.Random | None = None) -> float:
    """Delay after ``failures`` consecutive failures: base * 2^(n-1), capped, then scaled by 50-100%."""
    if failures < 1:
        return 0.0
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2.0 ** (failures - 1))
    jitter = rng.random() if rng is not None else random.random()
    return ceiling * (0.5 + 0.5 * jitter)
