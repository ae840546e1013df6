"""Students' copies (scripts/student_copies.py, `make student-copies`): no outputs, no folded
answers, no solution cells or dd.exercises.solution calls; every check() stays, code cells only
lose lines, and a copied chapter still runs with its checkers working."""
from __future__ import annotations

from _util import load_script
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUN_CHAPTER = ROOT / "notebooks" / "01_forward_process_and_schedules.ipynb"   # ~8 s, three check() cells


sc = load_script("student_copies")


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("students")
    report = sc.write_copies(NOTEBOOKS, out)
    return out, report


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(line in it for line in small)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_is_exercise_only(copies, path):
    out, _ = copies
    original = nbformat.read(path, as_version=4)
    copy = nbformat.read(out / path.name, as_version=4)
    nbformat.validate(copy)
    code = [c for c in copy.cells if c.cell_type == "code"]
    # no stored outputs, no widget state
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "widgets" not in copy.metadata
    # no folded answers, no solution cells, no solution calls
    for c in copy.cells:
        assert not sc._ANSWER_BLOCK.search(c.source), c.source[:200]
        assert not ({t.lower() for t in c.metadata.get("tags", [])} & sc.SOLUTION_TAGS)
        if c.cell_type == "code":
            assert not re.search(r"exercises\.solution\(", c.source), c.source
    # every check() and hint() call stays
    for call in ("dd.exercises.check(", "dd.exercises.hint("):
        n_orig = sum(c.source.count(call) for c in original.cells if c.cell_type == "code")
        assert sum(c.source.count(call) for c in code) == n_orig, call
    # code cells are the original's, in order, each only losing lines
    orig_code = [c.source.split("\n") for c in original.cells if c.cell_type == "code"]
    j = 0
    for c in code:
        lines = c.source.split("\n")
        while j < len(orig_code) and not _is_subsequence(lines, orig_code[j]):
            j += 1
        assert j < len(orig_code), f"a code cell of the copy is not from the original: {c.source[:200]}"
        j += 1
    # and they still compile (magics blanked)
    for c in code:
        compile(sc._parsable(c.source), path.name, "exec")


def test_the_stored_answers_are_the_ones_removed(copies):
    _, report = copies
    for path in NOTEBOOKS:
        n = len(sc._ANSWER_BLOCK.findall("".join(c.source for c in nbformat.read(path, as_version=4).cells
                                                 if c.cell_type == "markdown")))
        assert report[path.name]["answers"] == n


def test_solution_cells_calls_and_answers_are_stripped():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Q1?\n<details><summary><b>Answer</b></summary>\n\n$x = 1$\n</details>\n"
                                      "<details><summary>How to read the result</summary>keep me</details>"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport diffedu as dd\n"
                                  "dd.exercises.check('x', f)\ndd.exercises.hint('x')\n"
                                  "print(dd.exercises.solution(\n    'x'))\ny = 2"),
        nbformat.v4.new_code_cell("dd.exercises.solution('x')"),
        nbformat.v4.new_code_cell("def f(): return 1", metadata={"tags": ["solution"]}),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 3
    copy, counts = sc.student_copy(nb)
    assert counts == {"answers": 1, "solution_cells": 1, "solution_calls": 2, "outputs": 1}
    md, code, placeholder = copy.cells
    assert "$x = 1$" not in md.source and sc.ANSWER_PLACEHOLDER in md.source and "keep me" in md.source
    assert code.source == "%matplotlib inline\nimport diffedu as dd\ndd.exercises.check('x', f)\ndd.exercises.hint('x')\ny = 2"
    assert code.outputs == [] and code.execution_count is None
    assert placeholder.cell_type == "markdown" and placeholder.source == sc.CELL_PLACEHOLDER
    assert nb.cells[1].outputs, "the original must be left unchanged"


def test_a_student_copy_runs_and_its_checkers_work(tmp_path, monkeypatch):
    from nbclient import NotebookClient
    sc.write_copies([RUN_CHAPTER], tmp_path)
    nb = nbformat.read(tmp_path / RUN_CHAPTER.name, as_version=4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")        # the kernel inherits it: tiny models run fastest so
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(RUN_CHAPTER.parent)}}).execute()   # raises on a cell error
    checks = [c for c in nb.cells if c.cell_type == "code" and "dd.exercises.check(" in c.source]
    assert checks
    for c in checks:
        text = "".join(o.get("text", "") for o in c.outputs)
        assert "your code here" in text, f"the checker did not grade the unfinished exercise: {text[:300]}"
