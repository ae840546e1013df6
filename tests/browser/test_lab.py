"""Real-browser test: JupyterLab + ipywidgets, driven in Chromium by Playwright.

What a student does on day one, done by a robot: start JupyterLab, open a chapter (01, 12b and
13), run all cells, move a widget's slider (01's forward-process explorer "t", 12b's ensemble size
"K", 13's network-calls dashboard "calls"), and see the figure re-drawn. It
catches what nbval cannot: a widget that renders as "Error displaying widget", a missing
JupyterLab widget extension, or a slider whose callback never redraws.

Each chapter in CHAPTERS must display, in one code cell's output:
  * an ipywidgets slider whose description is exactly its label
    (DOM: ``.widget-slider`` containing ``label.widget-label`` with that text), and
  * the figure as an ``<img>`` in that same cell's output, re-drawn when the slider moves
    (an ipywidgets ``Output`` showing a matplotlib figure with the inline backend, or an
    ``ipywidgets.Image``).

Environment:
  DIFFEDU_LAB_NOTEBOOKS    notebook folder to serve (default: the repository's notebooks/);
                           it is copied to a temporary folder, so the repository is untouched
  DIFFEDU_CHROMIUM         browser executable (default /usr/bin/chromium, Debian's package)
  DIFFEDU_REQUIRE_BROWSER  when set, a missing browser or playwright fails instead of skips
                           (``make test`` sets it)
  DIFFEDU_BROWSER_ARTIFACTS  folder for a screenshot and logs on failure (default: pytest's
                           tmp_path)
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import pytest
from labserver import (accept_dialogs, assert_no_widget_errors, label_locator, slider_labelled, slider_value,
                       stderr_outputs, log_tail, wait_kernel_idle, wait_run_all_done, serve_lab)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
# (chapter, the label of the slider the test moves): chapter 01's forward explorer and chapter
# 12b's ensemble-size slider (an image grid of the later chapters) and 13's network-calls dashboard
# and 13b's teacher-vs-student slider on the digit U-Net (all built with viz.widgets.dashboard).
CHAPTERS = [("01_forward_process_and_schedules.ipynb", "t"), ("12b_segmentation.ipynb", "K"),
            ("13_distillation.ipynb", "calls"), ("13b_distilling_an_image_model.ipynb", "calls")]
CHROMIUM = os.environ.get("DIFFEDU_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("DIFFEDU_REQUIRE_BROWSER", "") not in ("", "0")

# Generous: on 2 CPU cores a kernel start plus run-all of chapter 01 takes about a minute.
KERNEL_IDLE_S = 120
RUN_ALL_S = 300
REDRAW_S = 60


def _missing_requirements() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
                f"or set DIFFEDU_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server (labserver.serve_lab) serving a temporary copy of the notebooks."""
    missing = _missing_requirements()
    if missing:
        if REQUIRE:
            pytest.fail(f"real-browser test required (DIFFEDU_REQUIRE_BROWSER) but {missing}")
        pytest.skip(missing)
    src = Path(os.environ.get("DIFFEDU_LAB_NOTEBOOKS", REPO / "notebooks"))
    for name, _ in CHAPTERS:
        if not (src / name).is_file():
            pytest.fail(f"{src / name} does not exist; the browser test drives its widget "
                        f"(set DIFFEDU_LAB_NOTEBOOKS to test another folder)")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(serve_lab(src, tmp_path))
        except RuntimeError as err:
            pytest.fail(str(err))
        yield server


@pytest.mark.parametrize("notebook,label", CHAPTERS, ids=[c[0].split("_")[0] for c in CHAPTERS])
def test_a_chapter_widget_redraws(lab, tmp_path, notebook, label):
    from playwright.sync_api import sync_playwright

    base, token, log_path = lab
    artifacts = Path(os.environ.get("DIFFEDU_BROWSER_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

        def fail(msg: str):
            shot = artifacts / "lab-failure.png"
            try:
                page.screenshot(path=str(shot), full_page=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            pytest.fail(f"{msg}\ntimings: {timings}\nscreenshot: {shot}\n"
                        f"browser console (errors/warnings, last 20):\n  "
                        + "\n  ".join(console[-20:])
                        + f"\nJupyterLab log (tail):\n{log_tail(log_path)}")

        try:
            # 1. Open chapter 01 and wait for its kernel.
            page.goto(f"{base}/lab/tree/{notebook}?token={token}", timeout=120_000)
            panel = page.locator(".jp-NotebookPanel").first
            try:
                panel.wait_for(state="visible", timeout=120_000)
                wait_kernel_idle(page, KERNEL_IDLE_S)
            except Exception as e:  # noqa: BLE001
                fail(f"notebook or kernel did not become ready: {e}")
            timings["open+kernel_s"] = round(time.monotonic() - t0, 1)

            # 2. Run > Run All Cells, as a student would.
            t1 = time.monotonic()
            panel.click(position={"x": 300, "y": 120})   # focus the notebook
            accept_dialogs(page)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
            page.locator(".lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).first.click()
            try:
                wait_run_all_done(page, RUN_ALL_S)
            except Exception as e:  # noqa: BLE001
                fail(f"Run All Cells did not finish: {e}")
            timings["run_all_s"] = round(time.monotonic() - t1, 1)

            # 3. Find the widget: the code cell whose output holds the slider labelled `label`.
            cell = page.locator(".jp-CodeCell").filter(has=slider_labelled(page, label)).first
            try:
                cell.wait_for(state="attached", timeout=REDRAW_S * 1000)
            except Exception:  # noqa: BLE001
                fail(f'no ipywidgets slider with description "{label}" (.widget-slider with '
                     f'label.widget-label "{label}") in any cell output after Run All Cells; '
                     'stderr/error outputs:\n' + stderr_outputs(page))
            cell.scroll_into_view_if_needed()
            slider = cell.locator(".widget-slider").filter(has=label_locator(page, label)).first
            img = cell.locator(".jp-OutputArea-output img").first
            try:
                img.wait_for(state="visible", timeout=REDRAW_S * 1000)
            except Exception:  # noqa: BLE001
                fail(f"the {label}-slider's cell shows no figure (<img>) in its output")
            assert_no_widget_errors(page, fail)
            before_src = img.get_attribute("src") or ""
            before_value = slider_value(slider)

            # 4. Move t: keyboard on the slider handle (End = max), like a user would.
            t2 = time.monotonic()
            handle = slider.locator(".noUi-handle, .ui-slider-handle").first
            handle.focus()
            # The last value but one: never the start (t: 100 -> 998; a 4-option slider: 1 -> 4). A
            # move back to the start value would show the very same picture (same PNG bytes).
            for key in ("End", "ArrowLeft"):
                handle.press(key)
            if slider_value(slider) == before_value:
                handle.press("Home")
            if slider_value(slider) == before_value:
                # Fallback: type a value into the readout (also what a user can do).
                readout = slider.locator(".widget-readout").first
                readout.click()
                page.keyboard.press("Control+A")
                page.keyboard.type(str(before_value - 1 if before_value > 0 else 1))
                page.keyboard.press("Enter")
            after_value = slider_value(slider)
            if after_value == before_value:
                fail(f"could not move the {label} slider (value stayed {before_value})")

            # 5. The figure must be re-drawn: a different image.
            deadline = time.monotonic() + REDRAW_S
            after_src = before_src
            while time.monotonic() < deadline:
                cur = cell.locator(".jp-OutputArea-output img")
                if cur.count():
                    after_src = cur.first.get_attribute("src") or ""
                    if after_src and after_src != before_src:
                        break
                page.wait_for_timeout(200)
            timings["redraw_s"] = round(time.monotonic() - t2, 1)
            if not after_src or after_src == before_src:
                fail(f"moving {label} from {before_value} to {after_value} did not change the "
                     f"figure within {REDRAW_S} s")
            page.wait_for_timeout(500)
            assert_no_widget_errors(page, fail)
            (artifacts / f"lab-after-{notebook.split('_')[0]}.png").write_bytes(cell.screenshot())
        finally:
            browser.close()
    timings["total_s"] = round(time.monotonic() - t0, 1)
    print(f"browser test timings: {timings}")




# The slideshow: jupyterlab-slideshow presents the notebook inside JupyterLab, so the kernel and
# the ipywidgets front end stay live on the slides. Chapter 01's explorer slide is reached by the
# deck's own "next" buttons (down into sub-slides and fragments, else forward), like a presenter.
DECK_NOTEBOOK, DECK_LABEL, DECK_MAX_STEPS = "01_forward_process_and_schedules.ipynb", "t", 60


def test_the_slideshow_presents_a_live_widget(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, log_path = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            def fail(msg: str):
                shot = tmp_path / "deck-failure.png"
                page.screenshot(path=str(shot))
                pytest.fail(f"{msg}\nscreenshot: {shot}\nJupyterLab log (tail):\n{log_tail(log_path)}")

            page.goto(f"{base}/lab/tree/{DECK_NOTEBOOK}?token={token}", timeout=120_000)
            panel = page.locator(".jp-NotebookPanel").first
            panel.wait_for(state="visible", timeout=120_000)
            wait_kernel_idle(page, KERNEL_IDLE_S)
            panel.click(position={"x": 300, "y": 120})
            accept_dialogs(page)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()
            wait_run_all_done(page, RUN_ALL_S)

            # Start the deck on the title slide (it opens at the active cell).
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Escape")
            toggle = page.locator("[data-command='deck:toggle']")
            if not toggle.count():
                fail("no deck button in the notebook toolbar: is jupyterlab-slideshow installed?")
            toggle.first.click()
            title = page.locator(".jp-Notebook .jp-Cell").first
            page.wait_for_function("e => e.classList.contains('jp-deck-mod-visible')", arg=title.element_handle(),
                                   timeout=20_000)

            # Advance until the explorer's slider is on screen.
            slider = slider_labelled(page, DECK_LABEL)
            down = page.locator("button.jp-deck-mod-direction-down")
            forward = page.locator("button.jp-deck-mod-direction-forward")
            for step in range(DECK_MAX_STEPS):
                if slider.count() and slider.first.is_visible():
                    break
                can_down = "jp-mod-disabled" not in (down.get_attribute("class") or "jp-mod-disabled")
                (down if can_down else forward).click()
                page.wait_for_timeout(300)
            else:
                fail(f"the {DECK_LABEL}-slider never came on screen in {DECK_MAX_STEPS} deck steps")
            cell = page.locator(".jp-CodeCell").filter(has=slider.first).first
            if "jp-deck-mod-visible" not in (cell.get_attribute("class") or ""):
                fail("the widget's cell is not on the current slide")
            assert_no_widget_errors(page, fail)

            # Move the slider on the slide: the figure must change.
            img = cell.locator(".jp-OutputArea-output img").first
            before = img.get_attribute("src") or ""
            handle = slider.first.locator(".noUi-handle, .ui-slider-handle").first
            handle.focus()
            handle.press("End")
            deadline = time.monotonic() + REDRAW_S
            while time.monotonic() < deadline:
                now = cell.locator(".jp-OutputArea-output img")
                if now.count() and (now.first.get_attribute("src") or "") not in ("", before):
                    break
                page.wait_for_timeout(200)
            else:
                fail("moving the slider on the slide did not change the figure")
            print(f"deck: the explorer is {step} steps after the title; its figure redrew on the slide")
        finally:
            browser.close()
