"""A warm Lambda execution environment: one process per function, loaded once, invoked many times.

Run as ``python -m localcloud.lambda_worker CODE_DIR HANDLER FUNCTION_NAME TIMEOUT``. Requests are
JSON lines on stdin; responses are JSON lines on the file descriptor named by ``LOCAL_LAMBDA_RESULT_FD``
so the function's own logs (stdout, as Powertools writes them) never mix with results. The first line,
``{"ready": true}``, says Init (loading the handler) is over: the router's timeout clock starts there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.aws import ACCOUNT_ID, REGION


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def _load_handler(code_dir: str, handler: str) -> Any:
    module_name, function_name = handler.rsplit(".", 1)
    path = Path(code_dir) / f"{module_name.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{Path(code_dir).name}_{module_name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load handler module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, code_dir)
    spec.loader.exec_module(module)
    return getattr(module, function_name)


def main() -> None:
    code_dir, handler_name, function_name, timeout = sys.argv[1:5]
    results = os.fdopen(int(os.environ["LOCAL_LAMBDA_RESULT_FD"]), "w", buffering=1)
    handler = _load_handler(code_dir, handler_name)
    results.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(function_name=function_name, timeout_seconds=float(timeout))
        try:
            response: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as error:
            response = {
                "error": {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error),
                }
            }
        sys.stdout.flush()
        results.write(json.dumps(response, default=str) + "\n")


if __name__ == "__main__":
    main()
