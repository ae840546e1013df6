"""Results a chapter records, so the conclusion (chapter 16) reads them instead of retyping them.

A chapter calls `record(...)` where it measures something worth remembering (a method's PSNR, a
student's SW at 4 calls). In a notebook the call displays one readable line and stores the result
in the cell's output under the MIME type `MIME`; the executed notebook (stored with its outputs)
is therefore the record. `collect(paths)` reads those results back from stored notebooks.
Outside a notebook the line is printed and the result returned.

    record(chapter="11", method="DDS", metric="PSNR (dB)", value=28.3, calls=50,
           baseline="TV", baseline_value=26.1, higher_is_better=True, note="23 views, 8 phantoms")
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

__all__ = ["MIME", "Result", "record", "collect", "table"]

MIME = "application/vnd.diffedu.result+json"
_FIELDS = ("chapter", "method", "metric", "value", "calls", "baseline", "baseline_value", "higher_is_better", "note")


class Result(dict):
    """One recorded result (a dict). It displays nothing as a cell's value: `record` has already
    shown it, so a notebook cell ending in `dd.results.record(...)` shows its line once."""

    def _ipython_display_(self):
        pass


def _number(name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite real number{' or None' if allow_none else ''}, got {v!r}")
    return float(v)


def _text(name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{name} must be a non-empty str{' or None' if allow_none else ''}, got {v!r}")
    return v


def record(chapter: str, method: str, metric: str, value: float, *, calls: int | None = None,
           baseline: str | None = None, baseline_value: float | None = None,
           higher_is_better: bool = True, note: str = "") -> Result:
    """Record one measured result of a chapter; displays it and returns it as a dict.

    chapter: the notebook's number ("11", "A2"); method: what was measured ("DDS");
    metric: what the number is, with its unit ("PSNR (dB)"); value: the number;
    calls: network calls per sample, if it applies; baseline / baseline_value: what the
    method is compared with in the chapter; higher_is_better: the metric's direction."""
    r = Result({"chapter": _text("chapter", chapter), "method": _text("method", method), "metric": _text("metric", metric),
         "value": _number("value", value),
         "calls": None if calls is None else int(_number("calls", calls)),
         "baseline": _text("baseline", baseline, allow_none=True),
         "baseline_value": _number("baseline_value", baseline_value, allow_none=True),
         "higher_is_better": bool(higher_is_better), "note": str(note)})
    if (r["baseline"] is None) != (r["baseline_value"] is None):
        raise ValueError("baseline and baseline_value go together: give both or neither, "
                         f"got baseline={baseline!r}, baseline_value={baseline_value!r}")
    line = _line(r)
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display
        display({MIME: dict(r), "text/plain": line}, raw=True)
    else:
        print(line)
    return r


def _line(r) -> str:
    s = f"[result] chapter {r['chapter']} | {r['method']} | {r['metric']} = {r['value']:.4g}"
    if r["calls"] is not None:
        s += f" at {r['calls']} calls"
    if r["baseline"] is not None:
        s += f" (vs {r['baseline']}: {r['baseline_value']:.4g})"
    return s + (f" [{r['note']}]" if r["note"] else "")


def collect(paths) -> list[dict]:
    """Every result recorded in the stored outputs of the given notebooks (paths or one folder),
    in notebook and cell order."""
    if isinstance(paths, (str, Path)):
        paths = [Path(paths)]
    files = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.ipynb")) if p.is_dir() else [p])
    out = []
    for f in files:
        nb = json.loads(f.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                r = o.get("data", {}).get(MIME)
                if isinstance(r, dict) and set(_FIELDS) <= set(r):
                    out.append({**{k: r[k] for k in _FIELDS}, "notebook": f.name})
    return out


def table(results, markdown: bool = True) -> str:
    """The results as one table (markdown by default), one row each."""
    head = ["chapter", "method", "metric", "value", "calls", "baseline", "baseline value", "better than baseline"]
    rows = []
    for r in results:
        better = ""
        if r["baseline_value"] is not None:
            better = "yes" if (r["value"] > r["baseline_value"]) == r["higher_is_better"] else "no"
        rows.append([r["chapter"], r["method"], r["metric"], f"{r['value']:.4g}",
                     "" if r["calls"] is None else str(r["calls"]), r["baseline"] or "",
                     "" if r["baseline_value"] is None else f"{r['baseline_value']:.4g}", better])
    if not markdown:
        return "\n".join("\t".join(row) for row in [head, *rows])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
