"""Posterior samplers on the exact Gaussian-mixture benchmark (MCGdiff's setup, Cardoso et al.
2024, section 4.1): sliced Wasserstein distance to exact posterior samples, mean ± std over
seeds, for d in {8, 80, 800} and d_y in {1, 2, 4}, printed as markdown (plus seconds per run).

    python benchmarks/bench_gmm_posterior.py                      # the full table (minutes)
    python benchmarks/bench_gmm_posterior.py --d 8 80 --dy 1 2 --seeds 3   # the notebook's

Not a pass/fail test. Each sampler runs with diffedu.exact.posterior_benchmark.DEFAULTS; the
perfect diffusion model is the prior's exact denoiser, so what remains is each sampler's own
approximation error. "exact posterior resampled" is the floor that finite samples give.
"""
from __future__ import annotations

import argparse
import time

import torch

from diffedu.exact import posterior_benchmark as gb


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, nargs="+", default=[8, 80, 800])
    p.add_argument("--dy", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seeds", type=int, default=5, help="number of problems (seeds 0..n-1) per (d, d_y)")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--samplers", nargs="+", default=list(gb.SAMPLERS), choices=list(gb.SAMPLERS))
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 avoids oversubscription on a shared machine)")
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = []
    for d in args.d:
        for dy in args.dy:
            rows += gb.run_benchmark(args.samplers, d, dy, args.n_samples, seeds=range(args.seeds),
                                     threads=args.threads)
            print(f"  done d={d}, d_y={dy} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nSliced Wasserstein to exact posterior samples (mean ± std over {args.seeds} seeds, "
          f"{args.n_samples} samples, 256 directions; lower is better)\n")
    print(gb.format_table(rows))
    print("\nSeconds per run (mean over seeds)\n")
    print(gb.format_table(rows, key="seconds", std=False))
    print("\nSampler settings:", {k: v for k, v in gb.DEFAULTS.items() if k in args.samplers})
    print(f"torch {torch.__version__}, {args.threads} thread(s), total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
