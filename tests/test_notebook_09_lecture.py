"""Chapter 09's lecture path (issue 18): every cell is tagged `core` or `optional`, a "Lecture
plan" cell near the top lists the core path with timings that fit a 50-minute lecture, and the
core path keeps the chapter's skeleton (title, settings, summary). Reads the .ipynb as JSON."""
from __future__ import annotations

import json
import re
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "notebooks" / "09_posterior_sampling.ipynb"
TAGS = {"core", "optional"}


def _cells():
    return json.loads(PATH.read_text(encoding="utf-8"))["cells"]


def _text(cell):
    return "".join(cell["source"])


def test_every_cell_is_core_or_optional():
    untagged = [k for k, c in enumerate(_cells()) if len(TAGS & set(c.get("metadata", {}).get("tags", []))) != 1]
    assert not untagged, f"cells without exactly one of {sorted(TAGS)}: {untagged}"


def test_lecture_plan_fits_fifty_minutes():
    cells = _cells()
    plans = [k for k, c in enumerate(cells) if c["cell_type"] == "markdown" and "## Lecture plan" in _text(c)]
    assert plans and plans[0] <= 2, "a '## Lecture plan' markdown cell right after the opening cell"
    minutes = [int(m) for m in re.findall(r"^\|\s*(\d+)\s*\|", _text(cells[plans[0]]), re.M)]
    assert minutes and 40 <= sum(minutes) <= 55, minutes


def test_core_path_keeps_the_skeleton():
    core = [c for c in _cells() if "core" in c.get("metadata", {}).get("tags", [])]
    text = "\n".join(_text(c) for c in core)
    for needed in ("# 09 ·", "# Settings", "## Summary", "### DPS", "### DDRM", "### RePaint", "### DiffPIR"):
        assert needed in text, needed
