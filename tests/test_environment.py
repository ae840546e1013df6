"""pyproject.toml, environment.yml, the Makefile, .ci/run and the README agree.

environment.yml is parsed by a small reader written for its simple shape (a mapping of
scalars and lists, one nested ``- pip:`` list), so the tests need no YAML library.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ readers
def read_pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def read_simple_yaml(text: str) -> dict:
    """Read the subset of YAML environment.yml uses.

    Top-level ``key: value`` and ``key:`` followed by ``- item`` lines; an item may be
    ``name:`` followed by a deeper ``- item`` list (conda's ``- pip:``), which becomes
    ``{name: [items]}``. Comments and blank lines are ignored.
    """
    data: dict = {}
    key = None            # current top-level key
    nested = None         # list under a "- name:" item
    nested_indent = -1
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0:
            k, sep, v = body.partition(":")
            if not sep:
                raise ValueError(f"environment.yml:{lineno}: expected 'key: value', got {raw!r}")
            key, nested = k.strip(), None
            data[key] = v.strip() if v.strip() else []
            continue
        if not body.startswith("- ") and body != "-":
            raise ValueError(f"environment.yml:{lineno}: expected a '- item' line, got {raw!r}")
        item = body[1:].strip()
        if nested is not None and indent > nested_indent:
            nested.append(item)
            continue
        if key is None or not isinstance(data.get(key), list):
            raise ValueError(f"environment.yml:{lineno}: list item outside a list: {raw!r}")
        if item.endswith(":") and " " not in item:
            nested, nested_indent = [], indent
            data[key].append({item[:-1]: nested})
        else:
            nested = None
            data[key].append(item)
    return data


def read_environment() -> dict:
    return read_simple_yaml((ROOT / "environment.yml").read_text())


def _pip_lines(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no '- pip:' list under dependencies")


def _norm(req: str) -> tuple[str, str, str]:
    """(canonical name, sorted specifiers, marker) of a requirement string."""
    r = Requirement(req)
    spec = ",".join(sorted(str(s) for s in r.specifier))
    return canonicalize_name(r.name), spec, str(r.marker or "")


# ------------------------------------------------------------------ tests
def test_simple_yaml_reader_reads_the_conda_shape():
    text = ("# c\nname: x\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11  # c\n"
            "  - pip\n  - pip:\n      - --extra-index-url https://e/x\n      - a>=1\n"
            "      - -e .\n")
    assert read_simple_yaml(text) == {
        "name": "x", "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip",
                         {"pip": ["--extra-index-url https://e/x", "a>=1", "-e ."]}]}


def test_environment_yml_shape():
    env = read_environment()
    assert env["name"] == "diffedu"
    assert env["channels"] == ["conda-forge"]
    assert "pip" in env["dependencies"], "conda must install pip for the pip: section"
    assert "-e ." in _pip_lines(env) or any(l.startswith("-e .[") for l in _pip_lines(env)), \
        "environment.yml must install diffedu itself (-e .)"


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    project = read_pyproject()["project"]
    want = {_norm(r) for r in project["dependencies"]}
    want |= {_norm(r) for r in project["optional-dependencies"]["dev"]}
    lines = _pip_lines(read_environment())
    extras = [l for l in lines if l.startswith("-e .[")]
    have = {_norm(l) for l in lines if not l.startswith("-")}
    if extras:  # "-e .[dev]" brings the dev extra with it
        have |= {_norm(r) for r in project["optional-dependencies"]["dev"]}
    missing = sorted(want - have)
    extra = sorted(have - want)
    assert not missing and not extra, (
        f"pyproject.toml and environment.yml differ:\n  only in pyproject: {missing}\n"
        f"  only in environment.yml: {extra}")


def test_python_versions_agree():
    requires = SpecifierSet(read_pyproject()["project"]["requires-python"])
    pythons = [d for d in read_environment()["dependencies"]
               if isinstance(d, str) and re.match(r"python\s*[=<>]", d)]
    assert len(pythons) == 1, f"environment.yml must pin python once, found {pythons}"
    version = re.sub(r"^python\s*=*\s*", "", pythons[0]).rstrip(".*")
    assert Version(version) in requires, (
        f"environment.yml's {pythons[0]!r} is outside requires-python {requires}")


def test_pyproject_metadata():
    data = read_pyproject()
    project = data["project"]
    assert project["name"] == "diffedu"
    assert project["version"] == "0.1.0"
    names = {_norm(r)[0] for r in project["dependencies"]}
    assert {"torch", "numpy", "ipywidgets", "jupyterlab", "ipykernel", "safetensors"} <= names
    for r in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert Requirement(r).specifier, f"{r!r} needs a lower bound"
    assert data["tool"]["setuptools"]["packages"]["find"]["include"] == ["diffedu*"]
    assert data["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]


def test_torch_requirement_is_satisfied_by_the_makefile_default():
    """make installs TORCH_SPEC first; diffedu's own torch bound must then be met, so
    `pip install -e .` never replaces it with another (CUDA) build."""
    spec = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert spec, "Makefile must define TORCH_SPEC ?= torch==<version>"
    pinned = Requirement(spec.group(1))
    assert pinned.name == "torch" and len(pinned.specifier) == 1
    version = Version(next(iter(pinned.specifier)).version)
    torch_req = next(Requirement(r) for r in read_pyproject()["project"]["dependencies"]
                     if canonicalize_name(Requirement(r).name) == "torch")
    assert version in torch_req.specifier


def test_ci_script_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    assert ci.is_file() and os.access(ci, os.X_OK), ".ci/run must exist and be executable"
    text = ci.read_text()
    assert text.startswith("#!") and "bash" in text.splitlines()[0]
    assert re.search(r"^\s*(exec\s+)?make test\b", text, re.M)
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme


def test_readme_chapter_map_names_every_notebook():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    missing = [n for n in notebooks if n not in readme]
    assert not missing, f"README.md's chapter map does not mention {missing}"
