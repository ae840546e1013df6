"""Every chapter presents as a slideshow inside JupyterLab (``jupyterlab-slideshow``; RISE reads the same metadata).

Reads the .ipynb files as JSON; runs nothing. The slide metadata is what RISE reads from each
cell, ``metadata.slideshow.slide_type``; the flow a 50-minute lesson wants (docs/teaching.md):
a title slide, the idea, the live demo with its widget, a check, the summary. Setup cells are
skipped, widgets never are, and in the chapters with a lecture plan (cells tagged ``core`` /
``optional``) no core cell is skipped except the setup.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from _util import cell_text, notebook_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A cell that continues the slide above has an empty `slideshow` dict (no slide_type). RISE and
# nbconvert read that the same as "-", but jupyterlab-slideshow (the deck we present with, live
# widgets included) reads only a missing slide_type as "continue" and silently drops "-" cells.
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", None}
# A cell that shows a widget: a diffedu widget helper, an explorer / player / viewer, or
# diffedu's dashboard. Import lines are left out (an import of a widget module shows nothing).
WIDGET = re.compile(r"widgets_|dd\.viz\.widgets|explorer\(|player\(|viewer\(|dashboard\(")
IMPORT_LINE = re.compile(r"^\s*(import|from)\s")


_cells, _text = notebook_cells, cell_text


def _slide_type(cell):
    """The cell's slide type; None for a continuation (an empty slideshow dict); "missing" when
    the cell has no slideshow metadata at all."""
    show = cell.get("metadata", {}).get("slideshow")
    return "missing" if not isinstance(show, dict) else show.get("slide_type")


def _first_line(cell):
    text = _text(cell).strip()
    return text.splitlines()[0] if text else ""


def _is_widget(cell):
    if cell["cell_type"] != "code":
        return False
    body = "\n".join(l for l in _text(cell).splitlines() if not IMPORT_LINE.match(l))
    return bool(WIDGET.search(body))


def _is_settings(cell):
    return cell["cell_type"] == "code" and bool(re.search(r"^# Settings", _text(cell), re.M))


def _is_import(cell):
    return cell["cell_type"] == "code" and bool(re.search(r"^import diffedu as dd", _text(cell), re.M))


def _where(path, k, cell):
    return f"{path.name} cell {k} ({_first_line(cell)[:60]!r})"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 10, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_slide_metadata(path):
    bad = [(_where(path, k, c), _slide_type(c)) for k, c in enumerate(_cells(path))
           if _slide_type(c) not in SLIDE_TYPES]
    assert not bad, (f"cells without a valid metadata.slideshow.slide_type (one of "
                     f"{sorted(SLIDE_TYPES, key=str)}; None: an empty slideshow dict, which continues the "
                     f"slide above; not '-', which jupyterlab-slideshow drops): {bad}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_starts_with_a_title_slide(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "markdown" and _slide_type(first) == "slide", (
        f"{path.name}: the title cell must open the slideshow as a 'slide'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_sections_and_summary_are_slides(path):
    cells = _cells(path)
    summary = [k for k, c in enumerate(cells)
               if c["cell_type"] == "markdown" and re.search(r"^##\s+Summary", _text(c), re.M)]
    assert summary, f"{path.name}: no '## Summary' cell"
    assert all(_slide_type(cells[k]) == "slide" for k in summary), f"{path.name}: the Summary is not a slide"
    n_slides = sum(_slide_type(c) == "slide" for c in cells)
    assert n_slides >= 4, f"{path.name}: only {n_slides} slides; a lesson has title, idea, demo, summary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets_are_shown(path):
    cells = _cells(path)
    widgets = [k for k, c in enumerate(cells) if _is_widget(c)]
    hidden = [_where(path, k, cells[k]) for k in widgets if _slide_type(cells[k]) in ("skip", "notes")]
    assert not hidden, f"widget cells skipped in the slideshow (the live demo must show): {hidden}"


def test_the_chapters_have_live_demos():
    """Chapters 01-09 and 13 each show at least one widget in the slideshow."""
    without = [p.name for p in NOTEBOOKS if p.stem[:2] not in ("00", "A1")
               and not any(_is_widget(c) and _slide_type(c) not in ("skip", "notes") for c in _cells(p))]
    assert not without, f"chapters whose slideshow has no widget: {without}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_settings_and_imports_are_skipped(path):
    cells = _cells(path)
    setup = [k for k, c in enumerate(cells) if _is_settings(c) or _is_import(c)]
    assert setup, f"{path.name}: no Settings or import cell found"
    shown = [_where(path, k, cells[k]) for k in setup if _slide_type(cells[k]) != "skip"]
    assert not shown, f"setup cells shown in the slideshow (set slide_type 'skip'): {shown}"


TAGGED = [p for p in NOTEBOOKS if any("core" in c.get("metadata", {}).get("tags", []) for c in _cells(p))]


def test_the_long_chapters_have_a_tagged_core_path():
    assert {"04", "05", "06", "07", "09"} <= {p.name[:2] for p in TAGGED}


@pytest.mark.parametrize("path", TAGGED, ids=lambda p: p.stem)
def test_core_cells_are_not_skipped(path):
    """Where a lecture plan tags cells core/optional, the core path is the slideshow."""
    cells = _cells(path)
    core = [k for k, c in enumerate(cells) if "core" in c.get("metadata", {}).get("tags", [])]
    setup = {k for k, c in enumerate(cells) if _is_settings(c) or _is_import(c)
             or (c["cell_type"] == "code" and _text(c).lstrip().startswith("g = dd.seed_everything"))}
    hidden = [_where(path, k, cells[k]) for k in core
              if k not in setup and _slide_type(cells[k]) == "skip"]
    assert not hidden, f"core cells skipped in the slideshow: {hidden}"
    plans = [k for k, c in enumerate(cells) if "Lecture plan" in _first_line(c)]
    assert plans and all(_slide_type(cells[k]) == "notes" for k in plans), (
        f"{path.name}: the lecture plan should be speaker notes ('notes')")
