"""Run time and peak memory of every chapter notebook, each executed fresh in its own process.

    python benchmarks/bench_notebooks.py [notebooks/01_*.ipynb ...] [--threads N]

Prints a markdown table. Peak memory is the largest resident set size of the notebook's
kernel (and of the executing process), read from getrusage of the reaped children.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

RUNNER = r"""
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
t0 = time.time()
NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
wall = time.time() - t0
peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"wall_s": wall, "peak_mb": peak / 1024}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels (default: unset)")
    args = ap.parse_args()
    paths = args.notebooks or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"cores: {os.cpu_count()}, OMP_NUM_THREADS: {env.get('OMP_NUM_THREADS', 'unset')}\n")
    print("| notebook | run time (s) | peak memory (MB) |\n|---|---:|---:|")
    for p in paths:
        start = time.time()
        res = subprocess.run([sys.executable, "-c", RUNNER, p, os.path.dirname(os.path.abspath(p))],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(f"| {os.path.basename(p)} | failed after {time.time() - start:.0f} s | |")
            print(res.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {os.path.basename(p)} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
