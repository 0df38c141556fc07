"""docs/presets.md documents the preset table as the code has it: one row per preset, every value shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from eks_capture.captures.presets import PRESETS, Preset

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _rows() -> dict[str, str]:
    """Table rows of docs/presets.md by preset name (the row's first cell)."""
    rows: dict[str, str] = {}
    for line in (DOCS / "presets.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) >= 6:
            rows[cells[0].strip("`")] = line.replace("\\|", "|")
    return rows


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_each_preset_has_a_row_naming_its_metrics_filter_snap_length_and_duration(preset: Preset) -> None:
    row = _rows().get(preset.name)

    assert row is not None, f"docs/presets.md has no row for {preset.name}"
    for namespace, metric in preset.metrics:
        assert namespace in row
        assert f"`{metric}`" in row
    if preset.filter is not None and not preset.pod_traffic:
        assert preset.filter in row
    assert (str(preset.snaplen) if preset.snaplen else "default") in row
    assert (f"{preset.duration_seconds} s" if preset.duration_seconds else "default") in row
    assert preset.why in row


def test_the_table_documents_no_preset_the_code_lacks() -> None:
    assert set(_rows()) == {preset.name for preset in PRESETS}


def test_the_recipes_page_names_every_metric_that_has_a_preset() -> None:
    recipes = (DOCS / "recipes.md").read_text()

    missing = [m for p in PRESETS for _, m in p.metrics if m not in recipes and m.startswith("ethtool_")]

    assert missing == []
