"""The published JSON schemas (docs/schemas/) are current and accept the sample events they describe."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from scripts.export_event_schemas import SCHEMA_DIR, rendered
from tests.events import event_names, load_event

SCHEMA_BY_PREFIX = {
    "alarm-": "alarm-state-change",
    "start-capture-": "start-capture",
    "stop-capture": "stop-capture",
    "start-recorder": "start-recorder",
    "stop-recorder": "stop-recorder",
    "s3-object-created-eventbridge": "s3-object-created",
    "s3-object-created-notification": "s3-notification",
    "schedule": "scheduled-event",
}


def schema_for(name: str) -> dict[str, Any]:
    base = name.removeprefix("invalid/")
    kind = next(schema for prefix, schema in SCHEMA_BY_PREFIX.items() if base.startswith(prefix))
    result: dict[str, Any] = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    return result


def test_committed_schemas_match_the_models() -> None:
    """Run scripts/export_event_schemas.py when this fails."""
    expected = rendered()
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == set(expected)
    for file_name, text in expected.items():
        assert (SCHEMA_DIR / file_name).read_text() == text, file_name


@pytest.mark.parametrize("name", event_names())
def test_every_sample_event_satisfies_its_published_schema(name: str) -> None:
    jsonschema.validate(load_event(name), schema_for(name), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    "name",
    [
        "invalid/start-capture-filter-semicolon",
        "invalid/start-capture-unknown-field",
        "invalid/start-capture-missing-cluster",
        "invalid/start-capture-bad-node-name",
        "invalid/start-capture-bad-instance-id",
    ],
)
def test_published_schema_refuses_what_the_model_refuses(name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load_event(name), schema_for(name), format_checker=jsonschema.FormatChecker())
