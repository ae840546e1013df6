"""Widget redraw cost in the kernel, without a browser: every dashboard of every chapter.

    python benchmarks/bench_widgets_kernel.py                 # every chapter, 12 moves per control
    python benchmarks/bench_widgets_kernel.py 01 05 --moves 20

For each chapter: execute the notebook in a fresh kernel (nbclient), then, in that kernel, find
every dashboard built by `viz.widgets.core.dashboard` and move each of its controls `--moves`
times (sliders: the next value, bouncing at the ends; dropdowns: the next option). Each move runs
the dashboard's whole reaction (its `before` hook, `draw()`, the PNG, the display message), timed
in wall-clock and in the kernel process's CPU time; moves to a value the dashboard has shown
before (its memo of rendered figures) are reported apart from those it had to draw. A move whose
draw() raises (the Output shows a traceback) stops that control and is reported. CPU time is what a loaded machine does not
inflate, so this is the before/after measure for redraw work; `bench_widgets_browser.py` adds the
browser's share on top (on-screen latency).

Prints one markdown table; `--json PATH` also writes the raw times.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from chapters import chapter_args

# Runs in the chapter's kernel after all its cells: time `moves` moves of every dashboard control.
PROBE = r"""
import gc as _gc, json as _json, time as _time
import ipywidgets as _W
def _probe(moves):
    rows = []
    boxes = []
    for o in _gc.get_objects():
        try:
            if type(o) is _W.VBox and hasattr(o, "draw") and hasattr(o, "controls"):
                boxes.append(o)
        except ReferenceError:                       # a dead weak proxy
            pass
    for b, box in enumerate(boxes):
        for label, w in box.controls.items():
            opts = list(getattr(w, "options", ()) or ())
            if opts:
                values = [v if not isinstance(v, tuple) else v[1] for v in opts]
            elif hasattr(w, "min") and hasattr(w, "max"):
                step = getattr(w, "step", 1) or 1
                n = int(round((w.max - w.min) / step))
                values = [w.min + k * step for k in range(n + 1)]
            else:
                continue
            if len(values) < 2:
                continue
            try:
                i = values.index(w.value)
            except ValueError:
                i = 0
            direction, wall, cpu, hit = 1, [], [], []
            st = getattr(box, "render_state", {})
            err = None
            for _ in range(moves):
                if not 0 <= i + direction < len(values):
                    direction = -direction
                i += direction
                h0 = st.get("hits", 0)
                t0, c0 = _time.perf_counter(), _time.process_time()
                try:
                    w.value = values[i]
                except Exception as e:                   # a value this control refuses now: stop here
                    err = f"{type(e).__name__}: {e}"[:200]
                    break
                wall.append(_time.perf_counter() - t0)
                cpu.append(_time.process_time() - c0)
                hit.append(st.get("hits", 0) > h0)
                bad = [o for o in box.out.outputs if o.get("output_type") == "error"]
                if bad:                                  # draw() raised: the Output shows a traceback, not a figure
                    err = f"draw raised {bad[0].get('ename')}: {bad[0].get('evalue')}"[:200]
                    break
            rows.append({"box": b, "widget": str(label), "kind": type(w).__name__, "wall": wall, "cpu": cpu, "hit": hit, "error": err,
                         "blit": bool(st.get("blit"))})
    return rows
print("PROBE" + _json.dumps(_probe(%d)))
"""


def bench_chapter(path: Path, moves: int, timeout: int = 900) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    nb.cells.append(nbformat.v4.new_code_cell(PROBE % moves))     # last: after every chapter cell
    client.execute()
    rows = []
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    for line in text.splitlines():
        if line.startswith("PROBE"):
            rows = json.loads(line[5:])
    for r in rows:
        r["chapter"] = path.stem
    return rows


def main(argv=None):
    args, paths = chapter_args(__doc__, argv)
    rows = []
    for p in paths:
        t = time.monotonic()
        try:
            rows += bench_chapter(p, args.moves)
        except Exception as err:                               # noqa: BLE001 - report the chapter, go on
            print(f"{p.name}: failed ({type(err).__name__}: {str(err)[-600:]})", file=sys.stderr)
        print(f"{p.name}: {time.monotonic() - t:.0f} s", file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    med = lambda v: 1000 * statistics.median(v) if v else float("nan")                          # noqa: E731
    p95 = lambda v: 1000 * statistics.quantiles(v, n=20)[18] if len(v) >= 2 else med(v)         # noqa: E731
    print("| chapter | widget | kind | blit | moves | drawn: CPU median ms | p95 ms | shown again (memo): CPU median ms | wall median ms |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        hits = r.get("hit") or [False] * len(r["cpu"])
        drawn = [c for c, h in zip(r["cpu"], hits) if not h]
        again = [c for c, h in zip(r["cpu"], hits) if h]
        blit = "yes" if r.get("blit") else "no"
        print(f"| {r['chapter']} | {r['widget']} | {r['kind']} | {blit} | {len(r['cpu'])} | {med(drawn):.0f} | {p95(drawn):.0f} "
              f"| {med(again):.0f} | {med(r['wall']):.0f} |" + (f" stopped: {r['error']}" if r.get("error") else ""))


if __name__ == "__main__":
    main()
