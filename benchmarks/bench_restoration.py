"""Chapter 10's restoration table, fuller than the notebook's: more held-out images, longer BIRD.

Two held-out sets of digits (test split, `degrade.test_set`):
  blind deblurring   blur (random 7x7 kernel) + noise sigma in [0.02, 0.05], same size
  real world (x2)    blur, x2 down, noise, JPEG in random order (the pipeline's defaults)
and, with --phantoms, blind deblurring of 32x32 phantoms with the `unet_phantoms` prior.
Columns: PSNR, SSIM, the classifier perceptual distance (digits only), the relative kernel
error, image-network calls, CPU seconds (one thread). Settings: those of the notebook unless
given. Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_restoration.py --n 32 --bird-iters 100
"""
from __future__ import annotations

import argparse
import time

import torch

import diffedu as dd
from diffedu import inverse as inv
from diffedu.inverse.blind import bird, blind_dps, degrade, diffbir, kernels, perceptual, stablesr

BLUR_SET = dict(ops=("blur", "noise"), factor=1, shuffle=False, sigma_range=(0.02, 0.05))


def _row(name, x, truth, k=None, kt=None, calls=0, secs=0.0, digits=True):
    x = x.clamp(-1, 1)
    p, s = dd.psnr(x, truth).mean().item(), dd.ssim(x, truth).mean().item()
    per = perceptual.perceptual_distance(x, truth).mean().item() if digits else float("nan")
    ke = kernels.kernel_error(k, kt).mean().item() if k is not None else float("nan")
    print(f"{name:26s} {p:6.2f} {s:6.3f} {per:7.3f} {ke:6.2f} {calls:6d} {secs:7.1f}", flush=True)


def _timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def blind_table(name, n, seed, a, prior, kprior):
    x, y, degs = degrade.test_set(name, n, seed=seed, **BLUR_SET)
    kt = torch.stack([d.kernel for d in degs])
    op = degrade.PipelineOperator(degs, tuple(x.shape[1:]))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    digits = name == "digits"
    it = a.bird_iters * 10 + 10
    print(f"\n{name}, blind deblurring ({n} held-out images)")
    print(f"{'method':26s} {'PSNR':>6s} {'SSIM':>6s} {'percep':>7s} {'k err':>6s} {'calls':>6s} {'CPU s':>7s}")
    _row("blurred y", y, x, digits=digits)
    xo, t = _timed(lambda: inv.dps(y, op, prior, prior.schedule, steps=50, zeta=0.5, generator=g()))
    _row("DPS, true kernel (oracle)", xo, x, calls=50, secs=t, digits=digits)
    (xb, kb), t = _timed(lambda: blind_dps.blind_dps(y, prior, kprior, prior.schedule, steps=50, zeta=0.5, zeta_k=0.3,
                                                     lam=0.02, generator=g()))
    _row("Blind-DPS", xb, x, kb, kt, 50, t, digits)
    kw = dict(steps=10, iters=a.bird_iters, lr=0.1, generator=g())
    (xn, _), t = _timed(lambda: bird.bird(y, prior, prior.schedule, operator=op, **kw))
    _row("BIRD, true kernel", xn, x, calls=it, secs=t, digits=digits)
    (xr, kr), t = _timed(lambda: bird.bird(y, prior, prior.schedule, kernel_size=7, lr_kernel=0.05, **kw))
    _row("BIRD, blind", xr, x, kr, kt, it, t, digits)
    (xf, _), t = _timed(lambda: bird.bird(y, prior, prior.schedule, operator=op, cheap=False, **kw))
    _row("BIRD, true kernel, full BP", xf, x, calls=it, secs=t, digits=digits)      # same iterations, exact gradient


def real_table(n, seed, a, prior, kprior):
    x, y, degs = degrade.test_set("digits", n, seed=seed)
    kt = torch.stack([d.kernel for d in degs])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    stage1 = dd.pretrained("blind/stage1_digits")
    enc = dd.pretrained("blind/stablesr_encoder_digits")
    cn = dd.pretrained("blind/diffbir_controlnet_digits")
    it = a.bird_iters * 10 + 10
    print(f"\ndigits, real-world pipeline, x2 ({n} held-out images)")
    print(f"{'method':26s} {'PSNR':>6s} {'SSIM':>6s} {'percep':>7s} {'k err':>6s} {'calls':>6s} {'CPU s':>7s}")
    _row("bicubic", diffbir.bicubic_up(y), x)
    with torch.no_grad():
        z, t = _timed(lambda: stage1(y))
    _row("stage 1 (regression)", z, x, calls=1, secs=t)
    xo, t = _timed(lambda: inv.dps(y, degrade.PipelineOperator(degs, (1, 16, 16)), prior, prior.schedule, steps=50,
                                   zeta=0.5, generator=g()))
    _row("DPS, true pipeline", xo, x, calls=50, secs=t)
    (xb, kb), t = _timed(lambda: blind_dps.blind_dps(y, prior, kprior, prior.schedule, factor=2, steps=50, zeta=0.5,
                                                     zeta_k=0.3, lam=0.02, generator=g()))
    _row("Blind-DPS", xb, x, kb, kt, 50, t)
    (xr, kr), t = _timed(lambda: bird.bird(y, prior, prior.schedule, kernel_size=7, factor=2, steps=10,
                                           iters=a.bird_iters, lr=0.1, lr_kernel=0.05, generator=g()))
    _row("BIRD, blind", xr, x, kr, kt, it, t)
    xs, t = _timed(lambda: stablesr.stablesr(y, prior, enc, w=1.0, steps=25, generator=g()))
    _row("StableSR-style", xs, x, calls=25, secs=t)
    xd, t = _timed(lambda: diffbir.diffbir(y, prior, cn, stage1, steps=25, generator=g()))
    _row("DiffBIR-style", xd, x, calls=26, secs=t)
    ref = dd.data.digits(16, split="train")[0]
    print("\nStableSR-style w curve: w, 1 - SSIM, perceptual distance, realism x1e3 (nearest train digit), "
          "Frechet distance to the train digits' features, PSNR")
    for w in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        xw = stablesr.stablesr(y, prior, enc, w=w, steps=25, generator=g())
        s = perceptual.scores(xw, x)
        print(f"{w:5.2f} {1 - s['ssim']:7.3f} {s['perceptual']:7.3f} {1e3 * perceptual.realism_distance(xw, ref):8.2f} "
              f"{perceptual.frechet_distance(xw, ref):8.3f} {s['psnr']:6.2f}")
    for name, v in (("stage 1", z), ("DiffBIR-style", xd), ("truth", x)):
        print(f"{name}: realism x1e3 {1e3 * perceptual.realism_distance(v, ref):.2f}, "
              f"Frechet {perceptual.frechet_distance(v, ref):.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--bird-iters", type=int, default=60)
    p.add_argument("--phantoms", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    kprior = blind_dps.kernel_prior()
    prior = dd.pretrained_denoiser("unet_digits", cond=torch.full((a.n,), 10))
    blind_table("digits", a.n, a.seed, a, prior, kprior)
    real_table(a.n, a.seed, a, prior, kprior)
    if a.phantoms:
        blind_table("phantoms", min(a.n, 8), a.seed, a, dd.pretrained_denoiser("unet_phantoms"), kprior)


if __name__ == "__main__":
    main()
