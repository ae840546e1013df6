"""Write exercise-only copies of the chapter notebooks for students to hand out.

    python scripts/student_copies.py [--out build/students] [notebooks/NN_*.ipynb ...]

Each copy is the chapter as stored, with
  * every output and execution count cleared (and the saved widget state dropped);
  * cells tagged "solution" replaced by a short placeholder;
  * folded answers in markdown (``<details><summary>Answer...</summary> ... </details>``)
    replaced by a placeholder (other <details> blocks, e.g. "How to read the result", stay);
  * ``dd.exercises.solution(...)`` statements removed from code cells (a cell left empty is
    dropped).
Everything else stays as it is: ``dd.exercises.check(...)`` and ``dd.exercises.hint(...)``
calls work unchanged, because the checkers live in the package, not in the notebook.
The notebooks in notebooks/ are only read.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAGS = {"solution", "solutions", "answer"}
ANSWER_PLACEHOLDER = "*(Answer removed from the students' copy: try it first, then ask your teacher.)*"
CELL_PLACEHOLDER = "*(A solution cell was removed from the students' copy.)*"

# A folded answer: <details> whose <summary> says Answer(s) / Solution(s). Non-greedy up to the
# first </details>: answer blocks are not nested.
_ANSWER_BLOCK = re.compile(
    r"<details\b[^>]*>\s*<summary\b[^>]*>(?:(?!</summary>).)*?\b(?:answers?|solutions?)\b(?:(?!</summary>).)*</summary>"
    r".*?</details>",
    flags=re.I | re.S)


def strip_answers(markdown: str) -> tuple[str, int]:
    """Replace folded answer blocks in a markdown cell by a placeholder; return (text, count)."""
    return _ANSWER_BLOCK.subn(ANSWER_PLACEHOLDER, markdown)


def _is_solution_call(node: ast.AST) -> bool:
    """True for a call of `*.exercises.solution(...)` / `exercises.solution(...)` anywhere in node."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "solution":
            base = sub.func.value
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if name == "exercises":
                return True
    return False


def _parsable(source: str) -> str:
    """The cell with IPython magics and shell lines blanked (same line numbers), for ast."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def strip_solution_calls(source: str) -> tuple[str, int]:
    """Remove top-level statements that call dd.exercises.solution(...); return (source, count).
    A cell that does not parse is returned unchanged."""
    if "solution" not in source:
        return source, 0
    try:
        tree = ast.parse(_parsable(source))
    except SyntaxError:
        return source, 0
    drop: set[int] = set()
    for stmt in tree.body:
        if _is_solution_call(stmt):
            drop.update(range(stmt.lineno, stmt.end_lineno + 1))
    if not drop:
        return source, 0
    lines = [line for i, line in enumerate(source.split("\n"), start=1) if i not in drop]
    return "\n".join(lines).strip("\n"), len([s for s in tree.body if _is_solution_call(s)])


def student_copy(nb) -> tuple[object, dict]:
    """Return (the student's copy of notebook `nb`, counts of what was removed). `nb` is unchanged."""
    import nbformat
    nb = nbformat.from_dict(nb)         # a deep copy
    counts = {"answers": 0, "solution_cells": 0, "solution_calls": 0, "outputs": 0}
    cells = []
    for cell in nb.cells:
        tags = {t.lower() for t in cell.get("metadata", {}).get("tags", [])}
        if tags & SOLUTION_TAGS:
            counts["solution_cells"] += 1
            cells.append(nbformat.v4.new_markdown_cell(CELL_PLACEHOLDER))
            continue
        if cell.cell_type == "markdown":
            cell.source, n = strip_answers(cell.source)
            counts["answers"] += n
        elif cell.cell_type == "code":
            counts["outputs"] += len(cell.get("outputs", []))
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
            cell.source, n = strip_solution_calls(cell.source)
            counts["solution_calls"] += n
            if n and not cell.source.strip():
                continue
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb, counts


def write_copies(paths, out: Path) -> dict:
    import nbformat
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for path in paths:
        path = Path(path)
        copy, counts = student_copy(nbformat.read(path, as_version=4))
        nbformat.validate(copy)
        nbformat.write(copy, out / path.name)
        report[path.name] = counts
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "students")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    report = write_copies(paths, args.out)
    for name, c in report.items():
        print(f"  {name:45s} {c['answers']} answer(s), {c['solution_cells']} solution cell(s), "
              f"{c['solution_calls']} solution call(s) removed; {c['outputs']} output(s) cleared")
    print(f"students' copies: {len(report)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
