"""Real-browser test: JupyterLab + ipywidgets, driven in Chromium by Playwright.

What a student does on day one, done by a robot: start JupyterLab, open a chapter (01, and the
newest, 13), run all cells, move a widget's slider (01's forward-process explorer "t", 13's
network-calls dashboard "calls"), and see the figure re-drawn. It
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

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
# (chapter, the label of the slider the test moves): chapter 01's forward explorer and chapter
# 13's network-calls dashboard (the newest chapter; built with viz.widgets.dashboard).
CHAPTERS = [("01_forward_process_and_schedules.ipynb", "t"), ("13_distillation.ipynb", "calls")]
CHROMIUM = os.environ.get("DIFFEDU_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("DIFFEDU_REQUIRE_BROWSER", "") not in ("", "0")

# Generous: on 2 CPU cores a kernel start plus run-all of chapter 01 takes about a minute.
SERVER_START_S = 90
KERNEL_IDLE_S = 120
RUN_ALL_S = 300
REDRAW_S = 60

ERROR_TEXTS = ("Error displaying widget", "Failed to load model class")


def _missing_requirements() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
                f"or set DIFFEDU_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free port, serving a temporary copy of the notebooks.

    Yields (base_url, token). Settings, workspaces and the user's Jupyter data folder are
    temporary too, so the user's own JupyterLab setup neither leaks in nor gets changed.
    """
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
    root = tmp_path / "notebooks"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))

    # JupyterLab user settings: every cell in the DOM (no virtual scrolling, which would
    # leave off-screen cells unrendered), no news or update checks (offline, no pop-ups).
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),    # no user-level kernelspecs
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_PLATFORM_DIRS="1",
        # The kernel runs this interpreter ("python3" kernelspec -> sys.executable) and
        # finds the repository's diffedu even if it was not pip-installed.
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend

    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                json.loads(_get(f"{base}/api/status?token={token}"))
                break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer /api/status within "
                                f"{SERVER_START_S} s:\n{_tail(log_path)}")
                time.sleep(0.5)
        yield base, token, log_path
    finally:
        _stop_lab(proc, base, token)
        log.close()


def _stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure it did."""
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5).read()
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    # Anything the server left behind in its own session (kernels) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("notebook,label", CHAPTERS, ids=[c[0][:2] for c in CHAPTERS])
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
                        + f"\nJupyterLab log (tail):\n{_tail(log_path)}")

        try:
            # 1. Open chapter 01 and wait for its kernel.
            page.goto(f"{base}/lab/tree/{notebook}?token={token}", timeout=120_000)
            panel = page.locator(".jp-NotebookPanel").first
            try:
                panel.wait_for(state="visible", timeout=120_000)
                _wait_kernel_idle(page, KERNEL_IDLE_S)
            except Exception as e:  # noqa: BLE001
                fail(f"notebook or kernel did not become ready: {e}")
            timings["open+kernel_s"] = round(time.monotonic() - t0, 1)

            # 2. Run > Run All Cells, as a student would.
            t1 = time.monotonic()
            panel.click(position={"x": 300, "y": 120})   # focus the notebook
            _accept_dialogs(page)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
            page.locator(".lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).first.click()
            try:
                _wait_run_all_done(page, RUN_ALL_S)
            except Exception as e:  # noqa: BLE001
                fail(f"Run All Cells did not finish: {e}")
            timings["run_all_s"] = round(time.monotonic() - t1, 1)

            # 3. Find the widget: the code cell whose output holds the slider labelled `label`.
            cell = page.locator(".jp-CodeCell").filter(has=_slider_labelled(page, label)).first
            try:
                cell.wait_for(state="attached", timeout=REDRAW_S * 1000)
            except Exception:  # noqa: BLE001
                fail(f'no ipywidgets slider with description "{label}" (.widget-slider with '
                     f'label.widget-label "{label}") in any cell output after Run All Cells; '
                     'stderr/error outputs:\n' + _stderr_outputs(page))
            cell.scroll_into_view_if_needed()
            slider = cell.locator(".widget-slider").filter(has=_label(page, label)).first
            img = cell.locator(".jp-OutputArea-output img").first
            try:
                img.wait_for(state="visible", timeout=REDRAW_S * 1000)
            except Exception:  # noqa: BLE001
                fail(f"the {label}-slider's cell shows no figure (<img>) in its output")
            _assert_no_widget_errors(page, fail)
            before_src = img.get_attribute("src") or ""
            before_value = _slider_value(slider)

            # 4. Move t: keyboard on the slider handle (End = max), like a user would.
            t2 = time.monotonic()
            handle = slider.locator(".noUi-handle, .ui-slider-handle").first
            handle.focus()
            for key in ("End", "PageDown", "ArrowLeft", "ArrowLeft"):
                handle.press(key)
            if _slider_value(slider) == before_value:
                # Fallback: type a value into the readout (also what a user can do).
                readout = slider.locator(".widget-readout").first
                readout.click()
                page.keyboard.press("Control+A")
                page.keyboard.type(str(before_value - 1 if before_value > 0 else 1))
                page.keyboard.press("Enter")
            after_value = _slider_value(slider)
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
            _assert_no_widget_errors(page, fail)
            (artifacts / f"lab-after-{notebook[:2]}.png").write_bytes(cell.screenshot())
        finally:
            browser.close()
    timings["total_s"] = round(time.monotonic() - t0, 1)
    print(f"browser test timings: {timings}")


# ------------------------------------------------------------------ helpers
def _label(page, label: str):
    return page.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def _slider_labelled(page, label: str):
    return page.locator(".widget-slider").filter(has=_label(page, label))


def _slider_value(slider) -> int:
    """The slider's value, read from its readout (or the handle's aria-valuenow)."""
    readout = slider.locator(".widget-readout").first
    text = (readout.inner_text() if readout.count() else "").strip()
    if not text:
        text = slider.locator(".noUi-handle").first.get_attribute("aria-valuenow") or "nan"
    return int(round(float(text.replace(",", ""))))


def _kernel_state(page) -> str:
    """'<kernel name> | <status>' as the notebook shows it. The toolbar's execution
    indicator alone says "idle" while there is still no kernel, hence the kernel name."""
    name = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName jp-button").first
    label = (name.get_attribute("aria-label") or "") if name.count() else ""
    ind = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator").first
    status = (ind.get_attribute("data-status") or "") if ind.count() else ""
    return f"{label or 'No Kernel'} | {status or 'unknown'}"


def _kernel_idle(page) -> bool:
    name, _, status = _kernel_state(page).partition(" | ")
    return name != "No Kernel" and status == "idle"


def _accept_dialogs(page) -> None:
    """Accept any dialog (e.g. a kernel chooser) with its default button."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count():
        accept.first.click()


def _wait_kernel_idle(page, timeout_s: float) -> None:
    """A kernel is attached, connected and idle, twice in a row half a second apart."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        _accept_dialogs(page)
        quiet = quiet + 1 if _kernel_idle(page) else 0
        if quiet >= 2:
            return
        page.wait_for_timeout(500)
    raise TimeoutError(f"kernel not idle after {timeout_s} s ({_kernel_state(page)})")


def _wait_run_all_done(page, timeout_s: float) -> None:
    """Every code cell has run ("[n]:" prompts, none "[*]:") and the kernel is idle, twice
    in a row a second apart (the kernel is briefly idle between queued cells). Returns
    early if execution stopped at an error (later cells stay "[ ]:")."""
    deadline = time.monotonic() + timeout_s
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    quiet = stalled = 0
    page.wait_for_timeout(1000)
    while time.monotonic() < deadline:
        _accept_dialogs(page)
        texts = prompts.all_inner_texts()
        running = any("*" in t for t in texts)
        ran = [bool(re.search(r"\[\d+\]", t)) for t in texts]
        settled = _kernel_idle(page) and not running
        quiet = quiet + 1 if (settled and ran and all(ran)) else 0
        stalled = stalled + 1 if settled and not all(ran) else 0
        if quiet >= 2:
            return
        if stalled >= 10:
            if any(ran):
                return  # stopped at an error; the caller reports the traceback
            raise RuntimeError(f"Run All Cells did not start ({_kernel_state(page)}; "
                               f"prompts {texts})")
        page.wait_for_timeout(1000)
    raise TimeoutError(f"cells still pending after {timeout_s} s ({_kernel_state(page)}): "
                       f"{prompts.all_inner_texts()}")


def _stderr_outputs(page) -> str:
    """Text of stderr / error outputs (tracebacks), for failure messages."""
    outs = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return "\n---\n".join(t[-1500:] for t in outs.all_inner_texts())


def _assert_no_widget_errors(page, fail) -> None:
    text = page.locator(".jp-NotebookPanel").first.inner_text()
    for bad in ERROR_TEXTS:
        if bad in text:
            fail(f"the notebook shows {bad!r}: the ipywidgets front end is broken")
