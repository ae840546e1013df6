"""CoDi on digits (chapter 13b, survey 7.3): 4x super-resolution of 16x16 test digits (y = 4x4 block
means) by the shipped CoDi student (distill/digits/codi_lowres: unet_digits frozen + a zero-initialised adapter,
1-8 calls), beside the unconditional teacher it started from (ignores y), chapter 12's many-step
ControlNet (control/controlnet_digits, low-res hint, DDIM) and chapter 09's DPS on the unconditional
teacher (100 and 250 steps; each step is a forward AND a backward pass). One thread.

Columns: meas PSNR = PSNR(A(x), y) (consistency with the measurement), PSNR to the truth, the digit
classifier's accuracy (blind/classifier_digits) on the true labels, per-pixel std over k samples of
one y (diversity), network calls per sample, CPU ms per sample (process time, one thread).
Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_codi.py [--n 64] [--k 2] [--only DPS]"""
import argparse
import time

import torch

from diffedu.data.images import digits
from diffedu.distill import codi


def rows(n: int = 64, k: int = 2, seed: int = 0, only: str = ""):
    torch.set_num_threads(1)
    x, labels = digits(16, "test")
    x, labels = x[:n], labels[:n]
    y = codi.lowres_operator().A(x)
    yk, hk = y.repeat(k, 1, 1, 1), codi.hint_of(y).repeat(k, 1, 1, 1)
    student = codi.load_codi()
    methods = [("teacher (zero-init student)", 4, lambda g: codi.teacher_sample(hk, 4, g))]
    methods += [("CoDi student", s, (lambda s: lambda g: codi.codi_sample(student, hk, s, generator=g))(s)) for s in (1, 2, 4, 8)]
    methods += [("ControlNet (ch. 12), DDIM", s, (lambda s: lambda g: codi.controlnet_solve(yk, s, g))(s)) for s in (4, 50)]
    methods += [("DPS (ch. 09), teacher", s, (lambda s: lambda g: codi.dps_solve(yk, s, 1.0, g))(s)) for s in (100, 250)]
    out = []
    for name, calls, fn in (m for m in methods if m[0].lower().startswith(only.lower())):
        g = torch.Generator().manual_seed(seed)
        t0 = time.process_time()
        samples = fn(g)
        ms = 1000 * (time.process_time() - t0) / len(samples)
        out.append({"method": name, "calls": calls, **codi.scores(samples, x, labels, k), "ms": ms})
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--only", default="", help="run only the methods whose name starts with this text")
    a = p.parse_args()
    print(f"4x super-resolution of {a.n} test digits, {a.k} samples each (seed 0)")
    print(f"{'method':30s} {'calls':>5s} {'meas PSNR':>9s} {'PSNR':>6s} {'acc':>6s} {'std':>6s} {'ms/sample':>9s}")
    for r in rows(a.n, a.k, only=a.only):
        print(f"{r['method']:30s} {r['calls']:5d} {r['meas PSNR']:9.2f} {r['PSNR']:6.2f} {r['accuracy']:6.3f} "
              f"{r['std']:6.3f} {r['ms']:9.1f}")


if __name__ == "__main__":
    main()
