"""Runs every benchmark (bench/bench_*.py) and writes one results table: bench/RESULTS.md and JSON.

Each benchmark prints its own table and writes bench/out/<topic>.json; a JSON with a ``rows`` list of
flat objects becomes a Markdown table here, each figure beside its reference from the same run. A run of
some benchmarks (``python -m bench bench_cli``) replaces their sections and keeps the others' from the last
run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"


def _machine() -> str:
    cpu = "unknown cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


def _section(topic: str, results: dict[str, Any]) -> list[str]:
    if topic in results["failed"]:
        return [f"## {topic}", "", f"failed with exit code {results['failed'][topic]}", ""]
    seconds = results["seconds"].get(topic)
    lines = [f"## {topic} ({seconds:.0f} s)" if seconds is not None else f"## {topic}", ""]
    data = results["benchmarks"][topic]
    rows = data.get("rows") if isinstance(data, dict) else None
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        lines += _table(rows)
    else:
        lines += ["```json", json.dumps(data, indent=2, default=str), "```"]
    return [*lines, ""]


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    selected = sys.argv[1:]
    scripts = sorted(p for p in BENCH_DIR.glob("bench_*.py") if not selected or p.stem in selected)
    previous = OUT_DIR / "results.json"
    # A run of some benchmarks replaces their sections and keeps the others' from the last run.
    results: dict[str, Any] = json.loads(previous.read_text()) if selected and previous.exists() else {}
    results["machine"] = _machine()
    for part in ("benchmarks", "seconds", "failed"):
        results.setdefault(part, {})
    failures: list[str] = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        topic = script.stem.removeprefix("bench_")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", f"bench.{script.stem}"], check=False)
        results["seconds"][topic] = time.monotonic() - started
        if done.returncode != 0:
            failures.append(script.stem)
            results["failed"][topic] = done.returncode
            results["benchmarks"].pop(topic, None)
            continue
        results["failed"].pop(topic, None)
        out = OUT_DIR / f"{topic}.json"
        results["benchmarks"][topic] = json.loads(out.read_text()) if out.exists() else {}
    sections = [
        line
        for topic in sorted({*results["benchmarks"], *results["failed"]})
        for line in _section(topic, results)
    ]
    header = ["# Benchmark results", "", f"Machine: {results['machine']}", ""]
    (BENCH_DIR / "RESULTS.md").write_text("\n".join(header + sections))
    previous.write_text(json.dumps(results, indent=2, default=str))
    if failures:
        print(f"benchmarks failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
