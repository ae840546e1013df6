"""diffedu.results: record -> stored notebook output -> collect -> table, and bad input."""
import json

import pytest

import diffedu as dd
from diffedu import results


def _nb(tmp_path, outputs, name="x.ipynb"):
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs, "execution_count": 1},
                    {"cell_type": "markdown", "source": "", "metadata": {}}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / name
    p.write_text(json.dumps(nb))
    return p


def test_record_returns_and_prints(capsys):
    r = dd.results.record("11", "DDS", "PSNR (dB)", 28.314, calls=50, baseline="TV", baseline_value=26.1, note="23 views")
    assert r == {"chapter": "11", "method": "DDS", "metric": "PSNR (dB)", "value": 28.314, "calls": 50, "baseline": "TV",
                 "baseline_value": 26.1, "higher_is_better": True, "note": "23 views"}
    assert capsys.readouterr().out.strip() == "[result] chapter 11 | DDS | PSNR (dB) = 28.31 at 50 calls (vs TV: 26.1) [23 views]"


def test_collect_reads_what_a_notebook_stored_and_table_judges_direction(tmp_path):
    a = results.record("02", "DDIM", "SW", 0.1, baseline="DDPM", baseline_value=0.2, higher_is_better=False)
    b = results.record("05", "w = 10", "log p", -4.0, baseline="w = 1", baseline_value=-1.0)
    c = results.record("A2", "sympy", "max error", 0.0)
    outs = [{"output_type": "display_data", "metadata": {}, "data": {results.MIME: r, "text/plain": "x"}} for r in (a, b)]
    outs.append({"output_type": "stream", "name": "stdout", "text": "not a result"})
    _nb(tmp_path, outs, "a.ipynb")
    _nb(tmp_path, [{"output_type": "display_data", "metadata": {}, "data": {results.MIME: c}}], "b.ipynb")
    got = results.collect(tmp_path)
    assert [r["method"] for r in got] == ["DDIM", "w = 10", "sympy"] and got[0]["notebook"] == "a.ipynb"
    rows = results.table(got).splitlines()[2:]
    assert rows[0].endswith("| yes |") and rows[1].endswith("| no |") and rows[2].endswith("|  |")


@pytest.mark.parametrize("kw, match", [
    (dict(value=float("nan")), "value must be a finite real"),
    (dict(value=True), "value must be a finite real"),
    (dict(chapter=""), "chapter must be a non-empty str"),
    (dict(baseline="TV"), "baseline and baseline_value go together"),
    (dict(baseline_value=1.0), "baseline and baseline_value go together"),
])
def test_bad_records_are_refused(kw, match):
    args = dict(chapter="11", method="m", metric="x", value=1.0) | kw
    with pytest.raises(ValueError, match=match):
        results.record(**args)
