"""Widget latency end to end: JupyterLab in headless Chromium, every slider and dropdown of every
chapter, the time from a move to the new figure on screen, beside the kernel's own redraw time.

    python benchmarks/bench_widgets_browser.py                 # every chapter, 12 moves per widget
    python benchmarks/bench_widgets_browser.py 01 05 --moves 30

For each chapter: open it in JupyterLab, Run All Cells, then for each widget control in the
outputs (an ipywidgets slider or dropdown that sits above a figure) move it `--moves` times with
the keyboard (sliders: ArrowRight, then ArrowLeft at the end of the range; dropdowns: the next
option) and time, in the browser's own clock, from the key press to the moment the figure's
<img> holds a new image. Each move waits until the kernel is idle again before the next, so moves
never queue. The kernel-side time is diffedu's `viz.widgets.core.REDRAW_LOG` (draw + PNG + send),
read through a second kernel client on the same kernel (jupyter_client). Widgets not built with
diffedu's dashboard show no kernel-side time.

Targets (DESIGN.md): median <= 100 ms for 2D figures, <= 300 ms for image grids, on 2 CPU cores.
Prints one markdown table; `--json PATH` also writes the raw times.
Needs Chromium (DIFFEDU_CHROMIUM, default /usr/bin/chromium) and playwright (the dev extras).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
from chapters import chapter_args  # noqa: E402
from labserver import accept_dialogs, wait_kernel_idle, wait_run_all_done, serve_lab  # noqa: E402

CHROMIUM = os.environ.get("DIFFEDU_CHROMIUM", "/usr/bin/chromium")

# In the page: resolve when the <img> of `cell` differs from `old` (or appears); the time of that
# animation frame, in the page's performance.now() clock.
WAIT_NEW_IMAGE = """([cell, old]) => new Promise(resolve => {
  const src = () => { const i = cell.querySelector('.jp-OutputArea-output img'); return i ? i.src : ''; };
  const check = () => { const s = src(); if (s && s !== old) { resolve(performance.now()); return true; } return false; };
  if (check()) return;
  setTimeout(() => resolve(null), 20000);                  // no new image within 20 s: not a redraw of this figure
  const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
  obs.observe(cell, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
})"""


def _kernel_client(runtime_dir: Path):
    """A client on the (only) kernel the server started, through its connection file."""
    from jupyter_client import BlockingKernelClient
    files = sorted(runtime_dir.glob("kernel-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    kc = BlockingKernelClient(connection_file=str(files[-1]))
    kc.load_connection_file()
    kc.start_channels()
    return kc


def _kernel_eval(kc, code: str) -> str:
    """Run `code` in the kernel; its stdout."""
    out = []
    kc.execute_interactive(code, output_hook=lambda m: out.append(m["content"].get("text", ""))
                           if m["msg_type"] == "stream" else None, timeout=60)
    return "".join(out)


def _shutdown_kernels(base, token):
    import urllib.request
    auth = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels", headers=auth), timeout=10) as r:
        kernels = json.loads(r.read())
    for k in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}", method="DELETE", headers=auth),
                               timeout=30).read()


def _controls(page):
    """(cell, control, kind, label) for every slider / dropdown in an output that also shows an image."""
    found = []
    for cell in page.locator(".jp-CodeCell").all():
        if not cell.locator(".jp-OutputArea-output img").count():
            continue
        for kind, sel in (("slider", ".widget-slider"), ("dropdown", ".widget-dropdown")):
            for ctl in cell.locator(f".jp-OutputArea-output {sel}").all():
                lab = ctl.locator("label.widget-label").first
                found.append((cell, ctl, kind, (lab.inner_text() if lab.count() else "").strip() or "?"))
    return found


def _move(page, ctl, kind, k):
    if kind == "slider":
        handle = ctl.locator(".noUi-handle, .ui-slider-handle").first
        handle.focus()
        now, hi = (float(handle.get_attribute(a) or 0) for a in ("aria-valuenow", "aria-valuemax"))
        handle.press("ArrowLeft" if now >= hi else "ArrowRight")
    else:
        sel = ctl.locator("select").first
        options = sel.locator("option").all_inner_texts()
        if len(options) < 2:
            return False
        sel.select_option(index=(options.index(sel.input_value()) + 1) % len(options)
                          if sel.input_value() in options else (k + 1) % len(options))
    return True


def bench_chapter(page, base, token, name, moves, kc_of):
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", timeout=120_000)     # reset: no tabs of earlier chapters
    page.locator(".jp-NotebookPanel:visible").first.wait_for(state="visible", timeout=120_000)
    wait_kernel_idle(page, 180)
    page.locator(".jp-NotebookPanel:visible").first.click(position={"x": 300, "y": 120})
    accept_dialogs(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    wait_run_all_done(page, 900)
    kc = kc_of()
    rows = []
    for cell, ctl, kind, label in _controls(page):
        cell.scroll_into_view_if_needed()
        if kc is not None:
            _kernel_eval(kc, "from diffedu.viz.widgets import core as _c; _c.REDRAW_LOG.clear()")
        browser_ms = []
        for k in range(moves):
            old = cell.locator(".jp-OutputArea-output img").first.get_attribute("src") or ""
            t0 = page.evaluate("performance.now()")
            if not _move(page, ctl, kind, k):
                break
            try:
                t1 = page.evaluate(WAIT_NEW_IMAGE, [cell.element_handle(), old])
            except Exception:        # noqa: BLE001 - a control that redraws nothing: report it, go on
                break
            if t1 is None:
                break
            browser_ms.append(t1 - t0)
            wait_kernel_idle(page, 60)
        server_ms = []
        if kc is not None:
            server_ms = [1000 * v for v in json.loads(_kernel_eval(
                kc, "import json; from diffedu.viz.widgets import core as _c; print(json.dumps(list(_c.REDRAW_LOG)))") or "[]")]
        rows.append({"chapter": name, "widget": label, "kind": kind, "moves": len(browser_ms),
                     "browser_ms": browser_ms, "server_ms": server_ms})
    if kc is not None:
        kc.stop_channels()
    return rows


def _q(v, q):
    return statistics.quantiles(v, n=20)[18] if len(v) >= 2 and q == 95 else (v[0] if v else float("nan"))


def main(argv=None):
    args, paths = chapter_args(__doc__, argv)
    from playwright.sync_api import sync_playwright
    names = [p.name for p in paths]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serve_lab(REPO / "notebooks", Path(tmp)) as (base, token, _log):
        runtime = Path(tmp) / "jupyter-runtime"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            for name in names:
                t = time.monotonic()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})     # one page per chapter
                try:
                    rows += bench_chapter(page, base, token, name, args.moves, lambda: _kernel_client(runtime))
                except Exception as err:                       # noqa: BLE001 - report the chapter, go on
                    print(f"{name}: failed ({type(err).__name__}: {str(err)[:200]})", file=sys.stderr)
                page.close()
                if args.json:                                  # partial results survive an interrupted run
                    args.json.write_text(json.dumps(rows, indent=1))
                print(f"{name}: {time.monotonic() - t:.0f} s", file=sys.stderr)
                _shutdown_kernels(base, token)                 # one chapter's kernel at a time
            browser.close()
    print("| chapter | widget | kind | moves | on screen: median ms | p95 ms | kernel redraw: median ms | p95 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        b, s = sorted(r["browser_ms"]), sorted(r["server_ms"])
        med = lambda v: statistics.median(v) if v else float("nan")      # noqa: E731
        print(f"| {r['chapter'][:-6]} | {r['widget']} | {r['kind']} | {r['moves']} | {med(b):.0f} | {_q(b, 95):.0f} "
              f"| {med(s):.0f} | {_q(s, 95):.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
