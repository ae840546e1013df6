"""A JupyterLab server for real-browser tests and benchmarks, and the Playwright helpers that
drive a notebook in it (open, Run All Cells, find a slider, read its value).

Used by tests/browser/test_lab.py and benchmarks/bench_widgets_browser.py.
"""
from __future__ import annotations

import contextlib
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

REPO = Path(__file__).resolve().parents[2]
SERVER_START_S = 90
ERROR_TEXTS = ("Error displaying widget", "Failed to load model class")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


@contextlib.contextmanager
def serve_lab(src: Path, tmp_path: Path):
    """A JupyterLab server on a free port, serving a temporary copy of the notebooks in `src`.

    Yields (base_url, token, log_path). Settings, workspaces and the user's Jupyter data folder
    are temporary too, so the user's own JupyterLab setup neither leaks in nor gets changed.
    Raises RuntimeError if the server does not come up.
    """

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

    port, token = free_port(), secrets.token_hex(16)
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
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log_tail(log_path)}")
            try:
                json.loads(http_get(f"{base}/api/status?token={token}"))
                break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer /api/status within "
                                f"{SERVER_START_S} s:\n{log_tail(log_path)}")
                time.sleep(0.5)
        yield base, token, log_path
    finally:
        stop_lab(proc, base, token)
        log.close()




def stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
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


def log_tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------ page helpers
def label_locator(page, label: str):
    return page.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def slider_labelled(page, label: str):
    return page.locator(".widget-slider").filter(has=label_locator(page, label))


def slider_value(slider) -> int:
    """The slider's value, read from its readout (or the handle's aria-valuenow)."""
    readout = slider.locator(".widget-readout").first
    text = (readout.inner_text() if readout.count() else "").strip()
    if not text:
        text = slider.locator(".noUi-handle").first.get_attribute("aria-valuenow") or "nan"
    return int(round(float(text.replace(",", ""))))


def kernel_state(page) -> str:
    """'<kernel name> | <status>' as the notebook shows it. The toolbar's execution
    indicator alone says "idle" while there is still no kernel, hence the kernel name."""
    name = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName jp-button").first
    label = (name.get_attribute("aria-label") or "") if name.count() else ""
    ind = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator").first
    status = (ind.get_attribute("data-status") or "") if ind.count() else ""
    return f"{label or 'No Kernel'} | {status or 'unknown'}"


def kernel_idle(page) -> bool:
    name, _, status = kernel_state(page).partition(" | ")
    return name != "No Kernel" and status == "idle"


def accept_dialogs(page) -> None:
    """Accept any dialog (e.g. a kernel chooser) with its default button."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count():
        accept.first.click()


def wait_kernel_idle(page, timeout_s: float) -> None:
    """A kernel is attached, connected and idle, twice in a row half a second apart."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        accept_dialogs(page)
        quiet = quiet + 1 if kernel_idle(page) else 0
        if quiet >= 2:
            return
        page.wait_for_timeout(500)
    raise TimeoutError(f"kernel not idle after {timeout_s} s ({kernel_state(page)})")


def wait_run_all_done(page, timeout_s: float) -> None:
    """Every code cell has run ("[n]:" prompts, none "[*]:") and the kernel is idle, twice
    in a row a second apart (the kernel is briefly idle between queued cells). Returns
    early if execution stopped at an error (later cells stay "[ ]:")."""
    deadline = time.monotonic() + timeout_s
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    quiet = stalled = 0
    page.wait_for_timeout(1000)
    while time.monotonic() < deadline:
        accept_dialogs(page)
        texts = prompts.all_inner_texts()
        running = any("*" in t for t in texts)
        ran = [bool(re.search(r"\[\d+\]", t)) for t in texts]
        settled = kernel_idle(page) and not running
        quiet = quiet + 1 if (settled and ran and all(ran)) else 0
        stalled = stalled + 1 if settled and not all(ran) else 0
        if quiet >= 2:
            return
        if stalled >= 10:
            if any(ran):
                return  # stopped at an error; the caller reports the traceback
            raise RuntimeError(f"Run All Cells did not start ({kernel_state(page)}; "
                               f"prompts {texts})")
        page.wait_for_timeout(1000)
    raise TimeoutError(f"cells still pending after {timeout_s} s ({kernel_state(page)}): "
                       f"{prompts.all_inner_texts()}")


def stderr_outputs(page) -> str:
    """Text of stderr / error outputs (tracebacks), for failure messages."""
    outs = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return "\n---\n".join(t[-1500:] for t in outs.all_inner_texts())


def assert_no_widget_errors(page, fail) -> None:
    text = page.locator(".jp-NotebookPanel").first.inner_text()
    for bad in ERROR_TEXTS:
        if bad in text:
            fail(f"the notebook shows {bad!r}: the ipywidgets front end is broken")
