"""Ideal denoiser on CPU: naive (N, K) logits vs the chunked online-log-sum-exp reference.

Prints a table of time and peak tensor memory per configuration; never pass/fail.

Peak memory is counted by `diffedu.kernels.memory.peak_tensor_memory`: every tensor that a
torch operator returns, minus those freed since, so the peak is the most tensor memory the
call held at once (beyond its inputs). It is exact and deterministic, where the process's
peak resident memory (ru_maxrss) also moves with library pages a busy machine evicts.
Expect the naive column to grow like N K (its logits, their softmax, ...), and the chunked
one to stay near a few N chunk_size floats whatever K is: it never allocates N x K.

    python benchmarks/bench_ideal_denoiser_cpu.py            # N=256, K in 1e3..1e5, D in 2, 64, 784
    python benchmarks/bench_ideal_denoiser_cpu.py --quick    # smaller, a few seconds
    python benchmarks/bench_ideal_denoiser_cpu.py --threads 1   # steadier on a busy machine
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--N", type=int, default=256)
    p.add_argument("--K", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--D", type=int, nargs="+", default=[2, 64, 784])
    p.add_argument("--chunk", type=int, default=4096, help="chunk_size of the online version")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="K in 1e3, 1e4 and D in 2, 64")
    args = p.parse_args()
    if args.quick:
        args.K, args.D, args.repeats = [1_000, 10_000], [2, 64], 2

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import torch

    from diffedu.kernels import ideal_denoiser_naive, ideal_denoiser_torch
    from diffedu.kernels.memory import peak_tensor_memory

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"ideal denoiser on CPU ({torch.get_num_threads()} threads, torch {torch.__version__}), "
          f"float32, N = {args.N}, chunk_size = {args.chunk}, time = best of {args.repeats}")
    head = (f"{'K':>7} {'D':>4} | {'N*K*4 MiB':>9} | {'naive ms':>9} {'peak MiB':>8} | "
            f"{'chunked ms':>10} {'peak MiB':>8} | {'max |diff|':>10}")
    print(head)
    print("-" * len(head))
    mib = lambda b: f"{b / 2**20:8.1f}"
    gen = torch.Generator().manual_seed(0)
    for D in args.D:
        for K in args.K:
            xt = torch.randn(args.N, D, generator=gen)
            means = torch.randn(K, D, generator=gen)
            runs = {"naive": lambda: ideal_denoiser_naive(xt, means, 0.5),
                    "chunked": lambda: ideal_denoiser_torch(xt, means, 0.5, chunk_size=args.chunk)}
            res = {}
            for name, fn in runs.items():
                out, peak = peak_tensor_memory(fn)
                res[name] = (out, peak, best_time(fn, args.repeats))
            diff = (res["naive"][0] - res["chunked"][0]).abs().max().item()
            print(f"{K:>7} {D:>4} | {args.N * K * 4 / 2**20:9.1f} | "
                  f"{1e3 * res['naive'][2]:9.1f} {mib(res['naive'][1])} | "
                  f"{1e3 * res['chunked'][2]:10.1f} {mib(res['chunked'][1])} | {diff:10.2e}")
    print("peak = most tensor memory held at once during the call, inputs excluded")


if __name__ == "__main__":
    main()
