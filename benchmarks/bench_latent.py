"""Chapter 11b's ReSample numbers: ReSample against pixel-space DPS on sparse-view CT. Prints a
markdown table; `--json PATH` also writes it (the notebook's stored table comes from
`--json diffedu/checkpoints/medical/latent_bench.json`). The cross-modality table and the patch-prior
comparison have their own scripts: scripts/precompute_medical_xmod.py and precompute_medical_patch.py.

    OMP_NUM_THREADS=1 python benchmarks/bench_latent.py            # about 8 CPU minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_latent.py --quick    # a smoke run

Held-out data everywhere: the checkpoints were trained on phantoms of seed 0; the images here are
phantoms of seed 1 (settings were tuned on seed-0 phantoms). CPU seconds are process time on one thread.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import diffedu as dd
from diffedu.inverse.operators.ct import ParallelBeamCT, fbp, sparse_view_angles
from diffedu.inverse.posterior.dps import dps
from diffedu.medical import latent, resample

SIGMA_Y = 0.1            # noise on the sinogram of the [-1, 1] image (rays sum about 20 pixels)
DPS_KW = dict(steps=100, zeta=0.1)
RESAMPLE_KW = dict(steps=50, zeta=0.03, every=5, skip=0.3, gamma=40.0, opt_iters=20, opt_lr=0.05)


def _scores(x, truth):
    x = x.clamp(-1, 1)
    return round(float(dd.psnr(x, truth).mean()), 2), round(float(dd.ssim(x, truth).mean()), 3)


def _timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def fbp_image(y, op):
    """FBP of the [-1, 1] image: reconstruct the attenuation u = (x + 1) / 2 from (y + A 1) / 2, x = 2 u - 1."""
    ones = torch.ones(1, 1, op.image_size, op.image_size, dtype=y.dtype)
    return 2 * fbp((y + op.A(ones)) / 2, op) - 1


def ct_table(views_list, n, seed=1):
    x = dd.data.phantoms(n, size=32, seed=seed).images
    D = dd.pretrained_denoiser("unet_phantoms")
    ldm = latent.load_latent_diffusion()
    rows = []
    for views in views_list:
        op = ParallelBeamCT(32, sparse_view_angles(views))
        y = op.measure(x, SIGMA_Y, torch.Generator().manual_seed(100 + views))
        out, cpu = _timed(lambda: fbp_image(y, op))
        rows.append(dict(views=views, method="FBP", **dict(zip(("psnr", "ssim"), _scores(out, x))), prior_calls=0,
                         decoder_calls=0, cpu_s_per_image=round(cpu / n, 3)))
        out, cpu = _timed(lambda: dps(y, op, D, D.schedule, generator=torch.Generator().manual_seed(0), **DPS_KW))
        rows.append(dict(views=views, method=f"DPS (pixel, {DPS_KW['steps']} steps)", **dict(zip(("psnr", "ssim"), _scores(out, x))),
                         prior_calls=DPS_KW["steps"], decoder_calls=0, cpu_s_per_image=round(cpu / n, 2)))
        for name, kw in (("latent DPS (ReSample, no consistency)", dict(RESAMPLE_KW, every=0)),
                         ("ReSample (latent optimisation)", RESAMPLE_KW)):
            st = {}
            out, cpu = _timed(lambda: resample.resample(y, op, ldm, sigma_y=SIGMA_Y, stats=st,
                                                        generator=torch.Generator().manual_seed(0), **kw))
            rows.append(dict(views=views, method=name, **dict(zip(("psnr", "ssim"), _scores(out, x))),
                             prior_calls=st["prior_calls"], decoder_calls=st["decoder_calls"],
                             cpu_s_per_image=round(cpu / n, 2)))
        with torch.no_grad():
            rec = ldm.decode(ldm.encode(x))
        rows.append(dict(views=views, method="autoencoder of the truth (latent ceiling)",
                         **dict(zip(("psnr", "ssim"), _scores(rec, x))), prior_calls=0, decoder_calls=1,
                         cpu_s_per_image=0.0))
    return rows


def _md(rows):
    keys = list(rows[0])
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--n", type=int, default=8, help="held-out phantoms / pairs (default 8)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    n = 2 if a.quick else a.n
    out = {"ct": ct_table([8] if a.quick else [8, 23], n),
           "settings": {"sigma_y": SIGMA_Y, "dps": DPS_KW, "resample": RESAMPLE_KW, "n_images": n}}
    print(_md(out["ct"]), "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
