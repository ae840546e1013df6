"""Build the static book: one HTML page per chapter from the STORED executed notebooks.

    python scripts/build_book.py [--out build/book] [--notebooks notebooks]

Nothing is re-executed: each page is nbconvert's "lab" HTML of the notebook as stored, with
  * navigation (previous / contents / next) at the top and bottom of every page, in chapter
    order (the file names' order: 00..09, 13, A1);
  * an index page that is the chapter map (README.md's "Chapter map" table; a notebook missing
    from it is listed with its opening title);
  * math typeset offline by MathJax 2.7 from the `jupyter-server-mathjax` package (Jupyter's
    own offline MathJax), copied into _static/mathjax/; nbconvert's template already speaks
    MathJax 2, so only its URL changes;
  * figures embedded as PNG (as nbconvert does);
  * every widget shown as a static snapshot of its saved state (sliders, dropdowns and
    progress bars frozen at their stored values, each Output widget's stored figure as an
    image). The live widget manager (@jupyter-widgets/html-manager) is not in the Python
    environment and would load from a CDN, so the pages carry no widget JavaScript at all.
No page loads anything over http(s): `external_resources(html)` lists what would, and the
build fails if any remain (links in the prose are fine: they are not needed to render).
"""
from __future__ import annotations

import argparse
import base64
import copy
import html
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MATHJAX_DIR = "_static/mathjax"
MATHJAX_URL = MATHJAX_DIR + "/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


# ----------------------------------------------------------------------------- chapters
def chapter_paths(notebooks: Path) -> list[Path]:
    """The chapter notebooks in book order (file-name order: 00..09, 13, A1)."""
    return sorted(p for p in notebooks.glob("*.ipynb") if re.match(r"^[0-9A-Z]\w*_", p.name))


def notebook_title(nb) -> str:
    """The notebook's opening '# ' heading, e.g. '00 · Start here'."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def readme_chapter_map(readme: Path) -> dict[str, tuple[str, str]]:
    """{notebook stem: (what you learn, survey section)} from README.md's chapter-map table."""
    rows: dict[str, tuple[str, str]] = {}
    if not readme.exists():
        return rows
    text = readme.read_text(encoding="utf-8")
    m = re.search(r"^## Chapter map\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if not m:
        return rows
    for line in m.group(1).splitlines():
        # split on '|' not escaped as '\|'
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


# ----------------------------------------------------------------------------- widgets
def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _output_html(out: dict) -> str:
    """One stored output (of an Output widget) as HTML: PNG image, HTML, or text."""
    if out.get("output_type") == "stream":
        return f"<pre>{_esc(out.get('text', ''))}</pre>"
    data = out.get("data", {})
    if "image/png" in data:
        png = data["image/png"]
        png = png if isinstance(png, str) else "".join(png)
        return f'<img alt="widget figure" src="data:image/png;base64,{png.strip()}">'
    if "image/svg+xml" in data:
        svg = data["image/svg+xml"]
        svg = svg if isinstance(svg, str) else "".join(svg)
        return '<img alt="widget figure" src="data:image/svg+xml;base64,' + base64.b64encode(svg.encode()).decode() + '">'
    if "text/html" in data:
        h = data["text/html"]
        return h if isinstance(h, str) else "".join(h)
    if "text/plain" in data:
        t = data["text/plain"]
        return f"<pre>{_esc(t if isinstance(t, str) else ''.join(t))}</pre>"
    return ""


def widget_snapshot(model_id: str, state: dict, depth: int = 0) -> str:
    """Static HTML for the widget `model_id` and its children, from the saved widget state."""
    entry = state.get(model_id)
    if entry is None or depth > 20:
        return '<span class="dd-w-missing">[widget state not saved]</span>'
    name = entry.get("model_name", "")
    s = entry.get("state", {})
    desc = s.get("description", "")
    label = f'<span class="dd-w-label">{_esc(desc)}</span> ' if desc else ""

    def child(ref):
        return widget_snapshot(str(ref).removeprefix("IPY_MODEL_"), state, depth + 1)

    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"):
        return '<div class="dd-w-vbox">' + "".join(child(c) for c in s.get("children", [])) + "</div>"
    if name == "HBoxModel":
        return '<div class="dd-w-hbox">' + "".join(child(c) for c in s.get("children", [])) + "</div>"
    if name == "OutputModel":
        return '<div class="dd-w-output">' + "".join(_output_html(o) for o in s.get("outputs", [])) + "</div>"
    if name in ("IntSliderModel", "FloatSliderModel", "FloatLogSliderModel"):
        lo, hi, v = s.get("min", 0), s.get("max", 100), s.get("value", 0)
        shown = (s.get("base", 10) ** v) if name == "FloatLogSliderModel" else v
        return (f'<span class="dd-w-control">{label}<input type="range" disabled min="{_esc(lo)}" max="{_esc(hi)}" '
                f'step="any" value="{_esc(v)}"> <span class="dd-w-value">{_esc(shown)}</span></span>')
    if name in ("SelectionSliderModel", "SelectionRangeSliderModel"):
        labels = s.get("_options_labels", [])
        i = s.get("index", 0)
        i = i[0] if isinstance(i, list) and i else i
        v = labels[i] if isinstance(i, int) and 0 <= i < len(labels) else ""
        return (f'<span class="dd-w-control">{label}<input type="range" disabled min="0" max="{max(len(labels) - 1, 0)}" '
                f'value="{_esc(i)}"> <span class="dd-w-value">{_esc(v)}</span></span>')
    if name in ("IntRangeSliderModel", "FloatRangeSliderModel"):
        v = s.get("value", [0, 0])
        return f'<span class="dd-w-control">{label}<span class="dd-w-value">{_esc(v[0])} &ndash; {_esc(v[-1])}</span></span>'
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels = s.get("_options_labels", [])
        i = s.get("index", 0)
        opts = "".join(f'<option{" selected" if k == i else ""}>{_esc(o)}</option>' for k, o in enumerate(labels))
        return f'<span class="dd-w-control">{label}<select disabled>{opts}</select></span>'
    if name in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if s.get("value") else ""
        return f'<span class="dd-w-control"><input type="checkbox" disabled{checked}> {_esc(desc)}</span>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        return (f'<span class="dd-w-control">{label}<progress max="{_esc(s.get("max", 100))}" '
                f'value="{_esc(s.get("value", 0))}"></progress></span>')
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<span class="dd-w-html">{label}{s.get("value", "")}</span>'
    if name in ("LabelModel", "TextModel", "IntTextModel", "FloatTextModel", "BoundedIntTextModel",
                "BoundedFloatTextModel", "TextareaModel", "ValidModel"):
        return f'<span class="dd-w-control">{label}<span class="dd-w-value">{_esc(s.get("value", ""))}</span></span>'
    if name == "ButtonModel":
        return f'<button disabled>{_esc(desc)}</button>'
    if name == "ImageModel":
        return '<span class="dd-w-missing">[image widget]</span>'
    return f'<span class="dd-w-missing">[{_esc(name or "widget")}]</span>'


_PASSIVE = {"VBoxModel", "HBoxModel", "BoxModel", "OutputModel", "HTMLModel", "HTMLMathModel", "LabelModel",
            "FloatProgressModel", "IntProgressModel", "ImageModel"}


def _has_controls(model_id: str, state: dict, depth: int = 0) -> bool:
    """Whether the widget tree under `model_id` holds something a reader could move."""
    entry = state.get(model_id)
    if entry is None or depth > 20:
        return False
    if entry.get("model_name") not in _PASSIVE:
        return True
    return any(_has_controls(str(c).removeprefix("IPY_MODEL_"), state, depth + 1)
               for c in entry.get("state", {}).get("children", []))


WIDGET_NOTE = ('<div class="dd-w-note">Static snapshot of a live widget, at its saved values; '
               'run the notebook in JupyterLab (<code>make lab</code>) to move it.</div>')


def freeze_widgets(nb) -> int:
    """Replace every widget view in `nb` (in place) by a static HTML snapshot of its saved
    state, and drop the widget-state metadata so nbconvert adds no widget JavaScript.
    Returns the number of widget views replaced."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    n = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                model_id = data[WIDGET_VIEW].get("model_id", "")
                note = WIDGET_NOTE if _has_controls(model_id, state) else ""   # a progress bar needs none
                out["data"] = {"text/html": '<div class="dd-widget">' + widget_snapshot(model_id, state) + note + "</div>"}
                n += 1
    nb.metadata.pop("widgets", None)
    return n


# ----------------------------------------------------------------------------- checks
def error_outputs(nb) -> list[str]:
    """Descriptions of stored error outputs (output_type 'error' or a Traceback on a stream)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename', '')}: {out.get('evalue', '')}"[:200])
            elif out.get("output_type") == "stream" and "Traceback (most recent call last)" in out.get("text", ""):
                found.append(f"cell {i}: a Traceback on {out.get('name', 'stream')}")
    return found


_EXTERNAL = [
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//[^\"'\s>]+", re.I),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(https?:)?//[^\"'\s>]+", re.I),
    re.compile(r"<(?:img|iframe|embed|source|video|audio)\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//[^\"'\s>]+", re.I),
    re.compile(r"\bimport\s*\(\s*[\"'](https?:)?//[^\"']+", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?(https?:)?//[^\"')\s]+", re.I),
    re.compile(r"url\(\s*[\"']?(https?:)?//[^\"')\s]+", re.I),
]


def external_resources(page: str) -> list[str]:
    """Every http(s) (or protocol-relative) URL the page would fetch to render: script and
    stylesheet sources, images and frames, JS imports and CSS url()/@import. Plain <a href>
    links are not resources and are not listed."""
    found = []
    for pat in _EXTERNAL:
        found += [m.group(0)[:160] for m in pat.finditer(page)]
    return found


# ----------------------------------------------------------------------------- pages
BOOK_CSS = """
.dd-nav { display: flex; justify-content: space-between; gap: 1em; align-items: baseline;
  font-family: var(--jp-ui-font-family, sans-serif); font-size: 14px; padding: 8px 12px;
  margin: 0 0 12px 0; border-bottom: 1px solid #ddd; background: #fafafa; }
.dd-nav.dd-bottom { border-top: 1px solid #ddd; border-bottom: none; margin: 24px 0 0 0; }
.dd-nav a { text-decoration: none; }
.dd-nav .dd-prev, .dd-nav .dd-next { flex: 1; }
.dd-nav .dd-next { text-align: right; }
.dd-nav .dd-index { flex: 0 0 auto; text-align: center; }
.dd-widget { border: 1px dashed #bbb; padding: 6px; margin: 4px 0; }
.dd-w-vbox { display: flex; flex-direction: column; gap: 4px; }
.dd-w-hbox { display: flex; flex-direction: row; flex-wrap: wrap; gap: 16px; align-items: center; }
.dd-w-label { font-weight: 600; }
.dd-w-value { font-family: var(--jp-code-font-family, monospace); }
.dd-w-output img { max-width: 100%; }
.dd-w-note { font-size: 12px; color: #666; margin-top: 4px; }
"""


def nav_html(chapters: list[dict], i: int, where: str) -> str:
    prev = chapters[i - 1] if i > 0 else None
    nxt = chapters[i + 1] if i + 1 < len(chapters) else None
    p = f'<a rel="prev" href="{prev["href"]}">&larr; {_esc(prev["title"])}</a>' if prev else "<span></span>"
    n = f'<a rel="next" href="{nxt["href"]}">{_esc(nxt["title"])} &rarr;</a>' if nxt else "<span></span>"
    return (f'<nav class="dd-nav dd-{where}"><span class="dd-prev">{p}</span>'
            f'<span class="dd-index"><a rel="index" href="index.html">Contents</a></span>'
            f'<span class="dd-next">{n}</span></nav>')


PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [['$', '$'], ["\\(", "\\)"]], displayMath: [['$$', '$$'], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  displayAlign: "center", messageStyle: "none",
  // jupyter-server-mathjax ships the STIX-Web fonts only: use them, never a remote or image font
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  SVG: {font: "STIX-Web"}
});
</script>
<script src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}<style type="text/css">{{ resources.book_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.nav_top }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.nav_bottom }}
{{ super() }}
{%- endblock body_footer -%}
"""


def _mathjax_source() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as e:
        raise RuntimeError("the book needs the 'jupyter-server-mathjax' package (Jupyter's offline MathJax; "
                           "in diffedu's dev extra): "
                         "pip install jupyter-server-mathjax") from e
    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").exists():
        raise RuntimeError(f"no MathJax.js under {src}")
    return src


def index_html(chapters: list[dict], readme_map: dict) -> str:
    rows = []
    for ch in chapters:
        learn, section = readme_map.get(ch["stem"], ("", ""))
        learn = _esc(learn) if learn else _esc(ch["title"])
        rows.append(f'<tr><td><a href="{ch["href"]}">{_esc(ch["title"] or ch["stem"])}</a></td>'
                    f"<td>{learn}</td><td>{_esc(section)}</td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>diffedu: the book</title>
<style type="text/css">
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }}
.dd-nav {{ display: flex; justify-content: space-between; }}
</style></head>
<body>
<nav class="dd-nav"><span></span>
<span><a rel="next" href="{chapters[0]["href"]}">Start: {_esc(chapters[0]["title"])} &rarr;</a></span></nav>
<h1>diffedu: the book</h1>
<p>A PyTorch companion to the survey <em>"Unified Perspective: Theory, Practice, Interpretability,
and Controllability of Diffusion Models"</em>. These pages are the chapter notebooks as stored,
executed: read them here, then run them in JupyterLab (<code>make lab</code>) to move the sliders.
Widgets appear as static snapshots at their saved values.</p>
<h2>Chapter map</h2>
<table>
<tr><th>Chapter</th><th>What you learn</th><th>Survey section</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""


def build(out: Path = ROOT / "build" / "book", notebooks: Path = ROOT / "notebooks",
          readme: Path = ROOT / "README.md", strict: bool = True, verbose: bool = False) -> dict:
    """Build the book into `out`. Returns a report {stem: {...}}. With `strict`, raises
    RuntimeError when a notebook has stored error output or a page needs a remote resource."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    paths = chapter_paths(notebooks)
    if not paths:
        raise RuntimeError(f"no chapter notebooks in {notebooks}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(_mathjax_source(), out / MATHJAX_DIR, dirs_exist_ok=True)

    nbs = [nbformat.read(p, as_version=4) for p in paths]
    chapters = [{"stem": p.stem, "href": p.stem + ".html", "title": notebook_title(nb) or p.stem}
                for p, nb in zip(paths, nbs)]
    exporter = HTMLExporter(template_name="lab", mathjax_url=MATHJAX_URL,
                            extra_loaders=[jinja2.DictLoader({"book.html.j2": PAGE_TEMPLATE})])
    exporter.template_file = "book.html.j2"

    report, problems = {}, []
    for i, (path, nb) in enumerate(zip(paths, nbs)):
        t0 = time.perf_counter()
        errors = error_outputs(nb)
        nb = copy.deepcopy(nb)
        n_widgets = freeze_widgets(nb)
        resources = {"metadata": {"name": chapters[i]["title"]}, "book_css": BOOK_CSS,
                     "nav_top": nav_html(chapters, i, "top"), "nav_bottom": nav_html(chapters, i, "bottom")}
        page, _ = exporter.from_notebook_node(nb, resources=resources)
        (out / chapters[i]["href"]).write_text(page, encoding="utf-8")
        ext = external_resources(page)
        report[path.stem] = {"errors": errors, "widgets": n_widgets, "external": ext,
                             "seconds": time.perf_counter() - t0}
        problems += [f"{path.name}: stored error output, {e}" for e in errors]
        problems += [f"{path.name}: needs a remote resource: {u}" for u in ext]
        if verbose:
            print(f"  {chapters[i]['href']:45s} {n_widgets} widget(s) frozen, {report[path.stem]['seconds']:.1f} s")
    (out / "index.html").write_text(index_html(chapters, readme_chapter_map(readme)), encoding="utf-8")
    if problems and strict:
        raise RuntimeError("book built with problems:\n  " + "\n  ".join(problems))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    ap.add_argument("--no-strict", action="store_true", help="write the pages even if some have errors")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        report = build(args.out, args.notebooks, strict=not args.no_strict, verbose=True)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"book: {len(report)} chapters + index.html in {args.out} ({time.perf_counter() - t0:.1f} s); "
          f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
