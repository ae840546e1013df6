"""The command line the widget benchmarks share: which chapters, how many moves, where to write JSON."""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def chapter_args(doc: str, argv=None):
    """(args, notebook paths): the chapters named by prefix (e.g. 01 05; default every chapter),
    --moves per control and --json PATH for the raw times."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", help="notebook prefixes (e.g. 01 05); default: every chapter")
    ap.add_argument("--moves", type=int, default=12)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    paths = sorted(p for p in (REPO / "notebooks").glob("*.ipynb")
                   if not args.chapters or p.name.split("_")[0] in args.chapters)
    return args, paths
