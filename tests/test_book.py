"""The static book (scripts/build_book.py, `make book`): built from the stored notebooks into a
temporary folder, every chapter has a page, linked in order, with no error output, math typeset
by a local MathJax, widgets as static snapshots, and nothing fetched over http(s) to render."""
from __future__ import annotations

from _util import load_script
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


bb = load_script("build_book")
CHAPTERS = bb.chapter_paths(NOTEBOOKS)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The book, built once per test process into its own temporary folder (~7 s)."""
    out = tmp_path_factory.mktemp("book")
    report = bb.build(out, NOTEBOOKS, ROOT / "README.md", strict=False)
    return out, report


def _page(out: Path, name: str) -> str:
    return (out / name).read_text(encoding="utf-8")


def _links(fragment: str) -> dict[str, list[str]]:
    """{rel: [href, ...]} of the <a> tags in an HTML fragment (attributes in any order)."""
    links: dict[str, list[str]] = {}
    for tag in re.findall(r"<a\b[^>]*>", fragment):
        rel, href = re.search(r'rel="([^"]*)"', tag), re.search(r'href="([^"]*)"', tag)
        if rel and href:
            links.setdefault(rel.group(1), []).append(href.group(1))
    return links


def test_chapters_found_in_book_order():
    names = [p.stem for p in CHAPTERS]
    assert names, "no chapter notebooks"
    assert names[0].startswith("00_") and names == sorted(names)
    assert all(re.match(r"^[0-9A-Z]\w*_", n) for n in names)


def test_every_chapter_has_a_page_and_the_index_lists_them_in_order(book):
    out, report = book
    assert sorted(report) == sorted(p.stem for p in CHAPTERS)
    index = _page(out, "index.html")
    hrefs = re.findall(r'<td><a href="([^"]+)">', index)
    assert hrefs == [p.stem + ".html" for p in CHAPTERS]
    for p in CHAPTERS:
        page = _page(out, p.stem + ".html")
        title = bb.notebook_title(nbformat.read(p, as_version=4))
        assert title and bb.html.escape(title) in index, p.name
        assert len(page) > 10_000, f"{p.stem}.html looks empty"


def test_index_is_the_readme_chapter_map(book):
    out, _ = book
    index = _page(out, "index.html")
    rows = bb.readme_chapter_map(ROOT / "README.md")
    assert rows, "README.md has no chapter-map table"
    stems = {p.stem for p in CHAPTERS}
    for stem, (learn, section) in rows.items():
        assert stem in stems, f"README's chapter map names {stem}, which has no notebook"
        assert bb.html.escape(learn) in index and bb.html.escape(section) in index


def test_navigation_previous_contents_next_on_every_page(book):
    out, _ = book
    hrefs = [p.stem + ".html" for p in CHAPTERS]
    for i, href in enumerate(hrefs):
        page = _page(out, href)
        navs = re.findall(r'<nav class="dd-nav[^"]*">(.*?)</nav>', page, flags=re.S)
        assert len(navs) == 2, f"{href}: expected a navigation bar at the top and at the bottom"
        for nav in navs:
            links = _links(nav)
            assert links.get("index") == ["index.html"], href
            prev, nxt = links.get("prev", []), links.get("next", [])
            assert prev == (hrefs[i - 1:i] if i > 0 else []), href
            assert nxt == hrefs[i + 1:i + 2], href
            for target in prev + nxt:
                assert (out / target).exists()


def test_no_error_output_in_the_stored_notebooks_or_pages(book):
    out, report = book
    problems = {stem: r["errors"] for stem, r in report.items() if r["errors"]}
    assert not problems, f"stored error outputs (re-run scripts/execute_notebooks.py): {problems}"
    for p in CHAPTERS:
        page = _page(out, p.stem + ".html")
        source = "".join(c.source for c in nbformat.read(p, as_version=4).cells)
        if "Traceback" not in source:      # the prose may quote one; an output may not
            assert "Traceback" not in page, f"{p.stem}.html shows a traceback"


def test_math_is_configured_to_a_local_mathjax_that_exists(book):
    out, _ = book
    for p in CHAPTERS:
        page = _page(out, p.stem + ".html")
        srcs = re.findall(r'<script[^>]*src="([^"]*MathJax[^"]*)"', page)
        assert len(srcs) == 1, f"{p.stem}: MathJax scripts {srcs}"
        src = srcs[0]
        assert not re.match(r"^(https?:)?//", src), src
        assert (out / src.split("?")[0]).is_file(), f"{src} missing from the book"
        assert 'webFont: "STIX-Web"' in page        # the fonts the local copy ships
    assert (out / bb.MATHJAX_DIR / "fonts" / "HTML-CSS" / "STIX-Web").is_dir()


def test_no_remote_resource_is_needed_to_render(book):
    out, report = book
    for stem, r in report.items():
        assert r["external"] == [], f"{stem}.html fetches {r['external']}"
    for f in out.glob("*.html"):
        page = f.read_text(encoding="utf-8")
        assert bb.external_resources(page) == [], f.name
        assert "require.min.js" not in page and "unpkg.com" not in page and "cdnjs" not in page, f.name


def test_widgets_are_static_snapshots_with_their_saved_figure(book):
    out, report = book
    for p in CHAPTERS:
        nb = nbformat.read(p, as_version=4)
        views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if bb.WIDGET_VIEW in o.get("data", {})]
        page = _page(out, p.stem + ".html")
        assert report[p.stem]["widgets"] == len(views)
        assert page.count('<div class="dd-widget">') == len(views), p.stem
        assert bb.WIDGET_VIEW not in page and bb.WIDGET_STATE not in page, p.stem
        assert "[widget state not saved]" not in page, f"{p.stem}: a widget view without saved state"
        state = nb.metadata.get("widgets", {}).get(bb.WIDGET_STATE, {}).get("state", {})
        if any(m["model_name"] == "OutputModel" and m["state"].get("outputs") for m in state.values()):
            widgets = page.split('<div class="dd-widget">')[1:]
            assert any("data:image/png;base64," in w.split("dd-w-note")[0] for w in widgets), \
                f"{p.stem}: no widget shows its stored figure"


def test_widget_snapshot_and_resource_scan_units():
    png = "iVBORw0KGgo="
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_row", "IPY_MODEL_out"]}},
        "row": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_d"]}},
        "s": {"model_name": "IntSliderModel", "state": {"description": "t", "min": 0, "max": 9, "value": 3}},
        "d": {"model_name": "DropdownModel", "state": {"_options_labels": ["a", "b"], "index": 1}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure>"}}]}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 5, "max": 10}},
    }
    h = bb.widget_snapshot("box", state)
    assert f"data:image/png;base64,{png}" in h and 'value="3"' in h and "<option selected>b</option>" in h
    assert bb._has_controls("box", state) and not bb._has_controls("bar", state)
    assert "[widget state not saved]" in bb.widget_snapshot("nope", state)
    bad = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/y.css">'
           '<img src="http://example.org/z.png"><style>@import url("https://example.org/f.css")</style>')
    assert len(bb.external_resources(bad)) >= 4
    ok = '<a href="https://example.org">a link</a><script src="_static/mathjax/MathJax.js"></script>'
    assert bb.external_resources(ok) == []
