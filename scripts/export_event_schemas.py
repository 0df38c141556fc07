"""Write the JSON schema of every entry event to docs/schemas/ (a test fails when they are stale)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eks_capture.events.models import event_json_schemas

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def rendered() -> dict[str, str]:
    """File name -> file text of every schema, as committed."""
    return {
        f"{name}.schema.json": json.dumps(schema, indent=2) + "\n"
        for name, schema in event_json_schemas().items()
    }


def main() -> None:
    """Write the schemas into docs/schemas/ (or the directory given as the first argument)."""
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (directory / name).write_text(text)
        print(directory / name)


if __name__ == "__main__":
    main()
