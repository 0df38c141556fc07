"""The incident report of a capture: per-node timelines, findings, top talkers, links to the files."""
