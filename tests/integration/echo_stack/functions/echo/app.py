"""Returns the event and what the function saw of its environment, or fails when asked to."""

import os
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("detail", {}).get("fail"):
        raise RuntimeError("asked to fail")
    return {
        "detail_type": event["detail-type"],
        "account": event.get("account"),
        "detail": event["detail"],
        "from_globals": os.environ["FROM_GLOBALS"],
        "own": os.environ["OWN"],
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
