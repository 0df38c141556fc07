"""Returns the event and what the function saw of its environment, or fails or dawdles when asked to."""

import os
import time
from typing import Any

time.sleep(float(os.environ.get("INIT_SLEEP_SECONDS", "0")))  # a slow cold start, when a test asks for one


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("detail", {}).get("fail"):
        raise RuntimeError("asked to fail")
    time.sleep(float(event.get("detail", {}).get("sleep", 0)))
    return {
        "detail_type": event["detail-type"],
        "account": event.get("account"),
        "detail": event["detail"],
        "from_globals": os.environ["FROM_GLOBALS"],
        "own": os.environ["OWN"],
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
