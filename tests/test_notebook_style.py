"""Style of the chapter notebooks (DESIGN.md, "Notebooks"): short code cells, an opening cell
that cites the survey section the chapter mirrors, a closing Summary and Exercises, and survey
citations that name sections the survey has. Reads the .ipynb files as JSON; runs nothing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from _util import cell_text, notebook_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_CODE_LINES = 15                       # DESIGN.md: "code cells stay short (about 15 lines)"
UNCITED = {"A1_gpu_kernels"}              # the book's own appendix mirrors no survey section

# The numbering of the survey's table of contents (/work/shared/survey): every section and
# subsection it has, appendices included.
SURVEY_SECTIONS = {
    "1", "1.1", "1.2",
    "2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.6.1",
    "3", "3.1", "3.2", "3.3", "3.4", "3.5",
    "4", "4.1", "4.2", "4.3",
    "5", "5.1", "5.2",
    "6", "6.1", "6.2", "6.3",
    "7", "7.1", "7.2", "7.3",
    "8", "8.1", "8.2",
    "9", "9.1", "9.2",
    "10", "10.1", "10.2",
    "A", "A.1", "A.2", "A.2.1", "A.2.2", "A.3",
}
SECTION = re.compile(r"\bA(?:\.\d+)+|\b\d+(?:\.\d+)*")
# "survey section 2.3", "Survey sections 2.4 ...", "survey's section 2.6.1", "survey appendix A.2.2"
MENTION = re.compile(r"[Ss]urvey(?:'s)? (?:sections?|appendix) (A(?:\.\d+)+|\d+(?:\.\d+)*)")


_cells, _text = notebook_cells, cell_text


def _citation_line(path):
    """The italic line (or lines) of the opening cell naming the survey sections, '*Survey section ...*',
    joined into one string; None if there is none."""
    first = _cells(path)[0]
    lines = _text(first).splitlines() if first["cell_type"] == "markdown" else []
    for k, line in enumerate(lines):
        if re.match(r"\*Survey sections? ", line):
            end = next((j for j in range(k, len(lines)) if lines[j].rstrip().endswith("*")), None)
            return " ".join(lines[k:end + 1]) if end is not None else None
    return None


def _sections(text):
    return set(SECTION.findall(text))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 10, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long = [(k, len(_text(c).splitlines())) for k, c in enumerate(_cells(path))
            if c["cell_type"] == "code" and len(_text(c).splitlines()) > MAX_CODE_LINES]
    assert not long, (f"{path.name}: code cells (index, lines) longer than {MAX_CODE_LINES} lines: {long}; "
                      "split them at a natural boundary or move plumbing into diffedu")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opens_with_title_and_survey_citation(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "markdown", f"{path.name} must open with a markdown cell"
    title = _text(first).splitlines()[0]
    assert re.match(rf"# {re.escape(path.stem.split('_')[0])} · \S", title), f"{path.name}: title line {title!r}"
    line = _citation_line(path)
    if path.stem in UNCITED:
        assert line is None, f"{path.name} cites {line!r} but is listed as citing no survey section"
        return
    assert line is not None, (f"{path.name}: the opening cell needs a line like '*Survey section 2.1.*' "
                              "naming the survey section the chapter mirrors")
    cited = _sections(line)
    assert cited, f"{path.name}: no section number in {line!r}"
    assert cited <= SURVEY_SECTIONS, f"{path.name} cites sections the survey does not have: {cited - SURVEY_SECTIONS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_survey_mentions_name_real_sections(path):
    for k, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "markdown":
            continue
        for number in MENTION.findall(_text(cell)):
            assert number in SURVEY_SECTIONS, f"{path.name}, cell {k}: the survey has no section {number}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_closes_with_summary_and_exercises(path):
    headings = [line[3:].strip() for cell in _cells(path) if cell["cell_type"] == "markdown"
                for line in _text(cell).splitlines() if line.startswith("## ")]
    assert headings[-2:] == ["Summary", "Exercises"], (
        f"{path.name}: the last two '## ' headings must be Summary and Exercises, got {headings[-2:]}")


def _map_rows(text, heading):
    """{notebook stem: survey column} from the markdown table under `heading`."""
    block = text.split(heading, 1)[1]
    rows = {}
    for line in block.splitlines()[1:]:
        if line.startswith("#"):
            break
        cols = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]     # "\|" is a literal bar
        m = re.fullmatch(r"`(\w+)`", cols[0]) if line.startswith("|") else None
        if m:
            rows[m.group(1)] = cols
    return rows


def _chapter_maps():
    start = _text(_cells(ROOT / "notebooks" / "00_start_here.ipynb")[1])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return {"00_start_here": {k: v[1] for k, v in _map_rows(start, "## Map of the chapters").items()},
            "README.md": {k: v[2] for k, v in _map_rows(readme, "## Chapter map").items()}}


@pytest.mark.parametrize("where", ["00_start_here", "README.md"])
def test_chapter_maps_agree_with_the_chapters(where):
    table = _chapter_maps()[where]
    for path in NOTEBOOKS:
        if path.stem == "00_start_here":
            continue
        assert path.stem in table, f"{where}: the chapter map has no row for {path.stem}"
        line = _citation_line(path) or ""
        assert _sections(table[path.stem]) == _sections(line), (
            f"{where}: {path.stem} is mapped to {table[path.stem]!r}, but the notebook cites {line!r}")
