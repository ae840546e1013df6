"""How time and memory grow with image size for chapter 11's operators and solvers (survey 5.1).

    python benchmarks/bench_medical.py [--sizes 32 64 128] [--steps 3] [--device cpu]

Prints two tables. Operators: build time, one A and one A^T (batch 1) for sparse-view CT
(23 views) and single-coil MRI (4x). Solvers: seconds per diffusion step and peak memory for
DDS, Song et al. and DPS on CT with 23 views (and the TV baseline per 100 iterations), each
measured in a fresh subprocess so that peak memory (CPU: max RSS growth over the loaded
process; CUDA: torch.cuda.max_memory_allocated) belongs to that run alone. The prior is the
32 x 32 `unet_phantoms` U-Net applied to larger images (it is convolutional), so the numbers
are costs, not qualities. CPU numbers are process CPU seconds on one thread. Not a test.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _cpu():
    return time.process_time()


def one(size: int, what: str, steps: int, device: str) -> dict:
    import torch
    torch.set_num_threads(1)
    import diffedu as dd
    from diffedu.inverse.classical import tv_reconstruct
    from diffedu.inverse.operators.ct import ParallelBeamCT, sparse_view_angles
    from diffedu.inverse.operators.mri import SingleCoilMRI, cartesian_mask
    from diffedu.inverse.posterior.dds import dds
    from diffedu.inverse.posterior.dps import dps
    from diffedu.inverse.posterior.song_mc import song_mc
    dev = torch.device(device)
    clock = (lambda: (torch.cuda.synchronize(), time.perf_counter())[1]) if dev.type == "cuda" else _cpu
    x = dd.data.phantoms(1, size, seed=1234).images.to(dev)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = {"size": size, "what": what}
    if what in ("CT", "MRI"):
        t = clock()
        op = ParallelBeamCT(size, sparse_view_angles(23)) if what == "CT" else SingleCoilMRI(cartesian_mask(size, 4, 0.08))
        out["build_s"] = clock() - t
        y = op.A(x)
        t = clock()
        for _ in range(10):
            y = op.A(x)
        out["A_ms"] = (clock() - t) * 100
        t = clock()
        for _ in range(10):
            op.A_adjoint(y)
        out["AT_ms"] = (clock() - t) * 100
    else:
        D = dd.pretrained_denoiser("unet_phantoms", device=dev)
        op = ParallelBeamCT(size, sparse_view_angles(23))
        y = op.A(x)
        g = torch.Generator().manual_seed(0)
        run = {"DDS": lambda: dds(y, op, D, D.schedule, steps=steps, generator=g),
               "Song et al.": lambda: song_mc(y, op, D, D.schedule, steps=steps, generator=g),
               "DPS": lambda: dps(y, op, D, D.schedule, steps=steps, generator=g),
               "TV": lambda: tv_reconstruct(y, op, lam=0.03, iters=100)}[what]
        t = clock()
        run()
        out["s_per_step"] = (clock() - t) / (1 if what == "TV" else steps)
    if dev.type == "cuda":
        out["peak_MB"] = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        out["peak_MB"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "WHAT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1], a.steps, a.device)))
        return
    rows = []
    for what in ("CT", "MRI", "DDS", "Song et al.", "DPS", "TV"):
        for n in a.sizes:
            cmd = [sys.executable, __file__, "--one", str(n), what, "--steps", str(a.steps), "--device", a.device]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"operators (23-view CT, 4x single-coil MRI), device {a.device}")
    print(f"{'op':5s} {'size':>5s} {'build s':>8s} {'A ms':>8s} {'A^T ms':>8s} {'peak MB':>8s}")
    for r in rows:
        if "A_ms" in r:
            print(f"{r['what']:5s} {r['size']:5d} {r['build_s']:8.3f} {r['A_ms']:8.2f} {r['AT_ms']:8.2f} {r['peak_MB']:8.1f}")
    print(f"\nsolvers on 23-view CT, batch 1 (TV: per 100 iterations), device {a.device}")
    print(f"{'solver':12s} {'size':>5s} {'s/step':>8s} {'peak MB':>8s}")
    for r in rows:
        if "s_per_step" in r:
            print(f"{r['what']:12s} {r['size']:5d} {r['s_per_step']:8.3f} {r['peak_MB']:8.1f}")


if __name__ == "__main__":
    main()
