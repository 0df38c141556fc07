"""Captures: from a request to a verdict (trigger, options, presets, targets, recorder, reaper, indexer)."""
