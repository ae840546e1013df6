"""Store fresh outputs: execute each chapter notebook top to bottom in a new kernel, in place.

    python scripts/execute_notebooks.py [notebooks/NN_*.ipynb ...] [--jobs 2]

Stored outputs come from this fresh run-all (never from a half-run session), with one thread
per kernel (tiny models run fastest so). Fails on the first cell error, naming the notebook.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def run(path: str) -> str:
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    nbformat.write(nb, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    paths = args.notebooks or sorted(glob.glob(str(root / "notebooks" / "*.ipynb")))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.jobs) as pool:
        for done in pool.map(run, paths):
            print("executed", done, flush=True)


if __name__ == "__main__":
    sys.exit(main())
