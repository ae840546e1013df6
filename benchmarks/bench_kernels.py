"""diffedu.kernels: each Triton kernel vs torch eager and torch.compile; prints tables.

For every kernel and size: time per call, effective bandwidth (the minimum bytes the
operation must move, divided by the time) and its fraction of the GPU's peak memory
bandwidth. The DDIM step and adaLN kernels are memory-bound, so that fraction is the score.
The ideal denoiser is compute-bound (4 N K D flops on N D + K D + N D bytes), so its table
also shows achieved TFLOP/s. Never pass/fail.

On a machine without CUDA it says so and times the torch paths only (add --compile for
torch.compile on CPU, --interpret to also run the Triton kernels under Triton's CPU
interpreter at tiny sizes: a smoke test of this script, not a speed measurement; --full
for the GPU sizes on CPU).

    python benchmarks/bench_kernels.py                    # GPU: all kernels, all backends
    python benchmarks/bench_kernels.py --peak-gbps 3350   # override the peak-bandwidth table
    python benchmarks/bench_kernels.py --quick            # fewer, smaller sizes
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# Peak memory bandwidth (GB/s) by device name (vendor data sheets); first match wins.
PEAK_GBPS = [
    ("H200", 4800), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350), ("GH200", 4000),
    ("B200", 8000), ("A100-SXM4-80GB", 2039), ("A100 80GB PCIe", 1935), ("A100", 1555),
    ("L40S", 864), ("L40", 864), ("L4", 300), ("A10G", 600), ("A10", 600), ("RTX 4090", 1008),
    ("RTX 3090", 936), ("V100", 900), ("T4", 320),
]


def peak_gbps(device_name: str):
    for key, gbps in PEAK_GBPS:
        if key.lower() in device_name.lower():
            return gbps, key
    return None, None


def timer(fn, on_cuda: bool, budget_s: float = 0.2) -> float:
    """Seconds per call: median over repeated calls (CUDA: triton's do_bench, which also
    flushes the L2 cache between calls), after a warm-up call."""
    fn()
    if on_cuda:
        import torch
        try:
            from triton.testing import do_bench
        except ImportError:                       # no triton: CUDA events, L2 not flushed
            times = []
            for _ in range(20):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            return sorted(times)[len(times) // 2]
        return do_bench(fn, warmup=10, rep=int(1000 * budget_s), return_mode="median") / 1e3
    times = []
    t_end = time.perf_counter() + budget_s
    while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


class Table:
    """Collects rows and prints them with aligned columns."""

    def __init__(self, title, columns):
        self.title, self.columns, self.rows = title, columns, []

    def add(self, *row):
        self.rows.append([str(c) for c in row])

    def print(self):
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        line = " | ".join(c.rjust(w) for c, w in zip(self.columns, widths))
        print(f"\n{self.title}\n{line}\n{'-' * len(line)}")
        for r in self.rows:
            print(" | ".join(c.rjust(w) for c, w in zip(r, widths)))


def fmt_row(t, nbytes, peak, flops=None):
    gbps = nbytes / t / 1e9
    cells = [f"{1e3 * t:.3f}", f"{gbps:.1f}", f"{100 * gbps / peak:.0f}%" if peak else "-"]
    if flops is not None:
        cells.append(f"{flops / t / 1e12:.2f}")
    return cells


def make_backends(args, triton_ok):
    """Which implementations to time: name -> kind."""
    names = ["torch eager"]
    if args.compile:
        names.append("torch.compile")
    if triton_ok:
        names.append("triton")
    return names


def bench_ddim(args, dev, peak, triton_ok, torch, K):
    from diffedu.kernels.ddim_step import _ddim_core

    sizes = [(4, 4, 64, 64), (16, 4, 128, 128), (64, 4, 128, 128)]
    if args.quick:
        sizes = sizes[:2]
    if args.interpret:
        sizes = [(2, 3, 8, 8)]
    compiled = torch.compile(_ddim_core) if args.compile else None
    tab = Table("fused DDIM step (prediction='eps'); bytes = reads of xt, model_out[, noise] "
                "+ writes of x_prev, x0_hat",
                ["shape", "dtype", "eta", "backend", "ms", "GB/s", "% peak"])
    for shape in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=dev).manual_seed(0)
            xt, out, z = (torch.randn(shape, generator=g, device=dev).to(dtype) for _ in range(3))
            B = shape[0]
            ab_t = torch.full((B, 1, 1, 1), 0.5, device=dev)
            ab_prev = torch.full((B, 1, 1, 1), 0.7, device=dev)
            for eta in (0.0, 1.0):
                noise = z if eta > 0 else None
                nbytes = xt.numel() * xt.element_size() * (5 if eta > 0 else 4)
                runs = {"torch eager": lambda: K.ddim_step_torch(xt, out, 0.5, 0.7, eta,
                                                                 noise=noise),
                        "torch.compile": lambda: compiled(
                            xt.float(), out.float(), ab_t, ab_prev, eta, "eps", None,
                            noise.float() if noise is not None else None),
                        "triton": lambda: K.ddim_step_fused(xt, out, 0.5, 0.7, eta, noise=noise,
                                                            backend="triton")}
                for name in make_backends(args, triton_ok):
                    t = timer(runs[name], dev.type == "cuda")
                    tab.add(shape, str(dtype)[6:], eta, name, *fmt_row(t, nbytes, peak))
                if triton_ok and eta > 0:       # in-kernel noise: no noise tensor to read
                    t = timer(lambda: K.ddim_step_fused(xt, out, 0.5, 0.7, eta, seed=1,
                                                        backend="triton"), dev.type == "cuda")
                    tab.add(shape, str(dtype)[6:], eta, "triton, seed",
                            *fmt_row(t, xt.numel() * xt.element_size() * 4, peak))
    tab.print()
    print("(torch.compile runs the float32 core: for bfloat16 its time includes the casts)")


def bench_adaln(args, dev, peak, triton_ok, torch, K):
    from diffedu.kernels.adaln import _ln_modulate

    sizes = [(8, 256, 1152), (32, 256, 1152), (8, 4096, 768)]   # DiT-XL/2 256px, batch 8, 32
    if args.quick:
        sizes = sizes[:2]
    if args.interpret:
        sizes = [(2, 5, 48)]

    def fused_core(x, gate, y, shift, scale):
        x_new = x + gate[:, None] * y
        return x_new, _ln_modulate(x_new, shift, scale, 1e-6)

    c_ln = torch.compile(_ln_modulate) if args.compile else None
    c_fused = torch.compile(fused_core) if args.compile else None
    tab = Table("adaLN; bytes = reads of x[, y] + writes of h[, x_new] (per-sample vectors "
                "ignored)", ["B, T, C", "dtype", "op", "backend", "ms", "GB/s", "% peak"])
    for B, T, C in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=dev).manual_seed(0)
            x, y = (torch.randn(B, T, C, generator=g, device=dev).to(dtype) for _ in range(2))
            gate, shift, scale = (torch.randn(B, C, generator=g, device=dev).to(dtype)
                                  for _ in range(3))
            ops = {
                "layernorm_modulate": (2, {
                    "torch eager": lambda: K.layernorm_modulate_torch(x, shift, scale),
                    "torch.compile": lambda: c_ln(x, shift, scale, 1e-6),
                    "triton": lambda: K.layernorm_modulate(x, shift, scale, backend="triton")}),
                "modulated_residual": (4, {
                    "torch eager": lambda: K.modulated_residual_torch(x, gate, y, shift, scale),
                    "torch.compile": lambda: c_fused(x, gate, y, shift, scale),
                    "triton": lambda: K.modulated_residual(x, gate, y, shift, scale,
                                                           backend="triton")}),
            }
            for op, (n_arrays, runs) in ops.items():
                nbytes = n_arrays * x.numel() * x.element_size()
                for name in make_backends(args, triton_ok):
                    t = timer(runs[name], dev.type == "cuda")
                    tab.add(f"{B}, {T}, {C}", str(dtype)[6:], op, name, *fmt_row(t, nbytes, peak))
    tab.print()
    print("(torch eager computes in float32 and casts: for bfloat16 it moves more than the "
          "minimum; torch.compile here runs in the input dtype)")


def bench_ideal(args, dev, peak, triton_ok, torch, K):
    from diffedu.kernels.gmm_denoiser import _naive_core

    sizes = [(256, 10_000, 64), (256, 100_000, 64), (256, 50_000, 784), (256, 20_000, 3072)]
    if args.quick:
        sizes = sizes[:2]
    if args.interpret:
        sizes = [(20, 70, 10)]
    c_naive = torch.compile(_naive_core) if args.compile else None
    tab = Table("ideal denoiser (float32, comp_var = 0); bytes = xt + means + out; "
                "flops = 4 N K D", ["N, K, D", "backend", "ms", "GB/s", "% peak", "TFLOP/s"])
    for N, Kc, D in sizes:
        g = torch.Generator(device=dev).manual_seed(0)
        xt = torch.randn(N, D, generator=g, device=dev)
        means = torch.randn(Kc, D, generator=g, device=dev)
        ab = torch.full((N,), 0.5, device=dev)
        nbytes = 4 * (2 * N * D + Kc * D)
        runs = {"torch naive": lambda: K.ideal_denoiser_naive(xt, means, 0.5),
                "torch eager": lambda: K.ideal_denoiser_torch(xt, means, 0.5),
                "torch.compile": lambda: c_naive(xt, means, ab, None, 0.0),
                "triton": lambda: K.ideal_denoiser(xt, means, 0.5, backend="triton")}
        for name in ["torch naive"] + make_backends(args, triton_ok):
            label = {"torch eager": "torch chunked", "torch.compile": "compile(naive)"}.get(
                name, name)
            try:
                t = timer(runs[name], dev.type == "cuda", budget_s=0.5)
            except torch.OutOfMemoryError:
                tab.add(f"{N}, {Kc}, {D}", label, "OOM", "-", "-", "-")
                continue
            tab.add(f"{N}, {Kc}, {D}", label, *fmt_row(t, nbytes, peak, flops=4 * N * Kc * D))
    tab.print()
    print("(compute-bound: % of peak bandwidth is low by nature; the kernel computes its "
          "dot products in full float32, without TF32 tensor cores)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peak-gbps", type=float, default=None,
                   help="peak memory bandwidth in GB/s (default: from a table by device name)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="include torch.compile (default: on with CUDA, off on CPU)")
    p.add_argument("--interpret", action="store_true",
                   help="no GPU: also run the Triton kernels under TRITON_INTERPRET=1, tiny sizes")
    p.add_argument("--quick", action="store_true", help="fewer, smaller sizes (default on CPU)")
    p.add_argument("--full", action="store_true", help="all sizes even on CPU")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU only: torch threads (0: torch's default; 1 is steadier on a busy machine)")
    p.add_argument("--only", choices=["ddim", "adaln", "ideal"], nargs="+",
                   default=["ddim", "adaln", "ideal"])
    args = p.parse_args()
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"       # before anything imports triton
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import torch

    import diffedu.kernels as K
    from diffedu.kernels._dispatch import triton_available

    on_cuda = torch.cuda.is_available()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if on_cuda else "cpu")
    if args.compile is None:
        args.compile = on_cuda
    if not on_cuda and not args.full:
        args.quick = True
    peak = args.peak_gbps
    if on_cuda:
        name = torch.cuda.get_device_name()
        if peak is None:
            peak, key = peak_gbps(name)
            src = f"table entry {key!r}" if peak else "unknown: pass --peak-gbps"
        else:
            src = "--peak-gbps"
        print(f"device: {name}; peak bandwidth {peak or '?'} GB/s ({src}); "
              f"torch {torch.__version__}")
        triton_ok = triton_available()
        if not triton_ok:
            print("triton is not installed: timing the torch paths only")
    else:
        print(f"no GPU present (torch.cuda.is_available() is False): timing the torch paths "
              f"only, on CPU with {torch.get_num_threads()} threads; torch {torch.__version__}")
        triton_ok = args.interpret and triton_available()
        if triton_ok:
            print("--interpret: the Triton kernels run under the CPU interpreter (smoke test, "
                  "not a speed measurement)")
    for which in args.only:
        {"ddim": bench_ddim, "adaln": bench_adaln, "ideal": bench_ideal}[which](
            args, dev, peak, triton_ok, torch, K)


if __name__ == "__main__":
    main()
