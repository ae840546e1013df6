"""Real-browser test of the static book (scripts/build_book.py): opened from disk in Chromium
with every http(s) request refused, each chapter's math is typeset by the local MathJax (no
error, nothing left as raw TeX in the prose), widget snapshots show their stored figure, and the
"next" links walk the chapters in order.

Environment: DIFFEDU_CHROMIUM, DIFFEDU_REQUIRE_BROWSER as in test_lab.py.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DIFFEDU_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("DIFFEDU_REQUIRE_BROWSER", "") not in ("", "0")

MATHJAX_IDLE = ("window.MathJax && MathJax.Hub && MathJax.Hub.queue "
                "&& MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0")
# Text nodes in the prose (outside code) that still look like $...$ TeX: math left unrendered.
RAW_TEX_IN_PROSE = r"""() => { const out = []; const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n; while ((n = w.nextNode())) {
    if (n.parentElement.closest('pre, code, script, style, .jp-OutputArea, .dd-widget')) continue;
    const m = n.textContent.match(/\$[^$\n]{1,60}\$|\\\(|\\\[/); if (m) out.push(m[0]); }
  return out; }"""


def _load_build_book():
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    missing = None
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing = f"no Chromium at {CHROMIUM}"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "playwright is not installed"
    if missing:
        (pytest.fail if REQUIRE else pytest.skip)(missing)
    out = tmp_path_factory.mktemp("book")
    bb = _load_build_book()
    bb.build(out, REPO / "notebooks", REPO / "README.md")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        remote: list[str] = []

        def refuse(route):
            remote.append(route.request.url)
            route.abort()
        page.route("http://**/*", refuse)
        page.route("https://**/*", refuse)
        yield out, bb, page, remote
        browser.close()


def test_book_renders_offline_in_chromium(browser_page):
    out, bb, page, remote = browser_page
    chapters = bb.chapter_paths(REPO / "notebooks")
    page.goto((out / "index.html").as_uri())
    href = page.get_attribute('a[rel="next"]', "href")
    for i, nb in enumerate(chapters):
        assert href == nb.stem + ".html", f"link {i}: {href}"
        page.goto((out / href).as_uri())
        page.wait_for_function(MATHJAX_IDLE, timeout=60_000)
        assert page.locator(".MathJax, .MathJax_Display").count() > 0, f"{href}: no typeset math"
        assert page.locator(".MathJax_Error, .merror").count() == 0, f"{href}: a MathJax error"
        raw = page.evaluate(RAW_TEX_IN_PROSE)
        assert not raw, f"{href}: TeX left unrendered in the prose: {raw[:5]}"
        for img in page.locator(".dd-w-output img").all():
            img.scroll_into_view_if_needed()
            assert img.evaluate("e => e.complete && e.naturalWidth > 0"), f"{href}: a widget figure did not load"
        nxt = page.locator('nav.dd-top a[rel="next"]')
        href = nxt.get_attribute("href") if nxt.count() else None
    assert href is None, "the last chapter links onwards"
    assert remote == [], f"the book asked the network for {remote}"
