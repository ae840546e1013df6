"""Chapter 11b's cross-modality table: why the x0 model collapsed, and the retrained v model.

    python scripts/precompute_medical_xmod.py [--n 8] [--samples 8] [--steps 25] [--out diffedu/checkpoints/medical/xmod_results.json]

Protocol. Held-out pairs `paired_modalities(n, 32, seed=1)` (training used seed 0). Each conditional model
draws `samples` MR images per CT image by DDIM (eta = 1, `steps` steps, x0_hat clamped to [-1, 1]);
`calibration` scores the mean and single samples, the per-pixel spread against the error, and the coverage
of the 90 % interval. The regression U-Net of the same size is the baseline. The collapse test: the gain
d x0_hat / d x_t of each model's denoiser (`denoiser_gain`) inside the brain and away from the lesion, at
small t, against the Gaussian closed form for the MR noise (std 2 * MR_NOISE in [-1, 1] units).
Models: medical/xmod_diffusion (x0), medical/xmod_diffusion_v (v), and any extra checkpoint given by
--extra NAME=PATH. The shipped table has x0_2000=PATH, the x0 model trained as long as the v model (not shipped:
`python -m diffedu.medical.train xmod_diffusion --steps 2000 --seed 0 --out PATH`, its manifest command is stored
with its row): it tells the parameterisation from the training length. One thread, CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import diffedu as dd
from diffedu.medical import cross_modality as xm

GAIN_T = (10, 50, 100)


def evaluate(model, pairs, samples, steps, seed):
    t0 = time.process_time()
    xs = xm.translate(model, pairs.ct, dd.linear_schedule(1000), samples, steps, generator=torch.Generator().manual_seed(seed))
    cal = xm.calibration(xs, pairs.mr)
    cal["cpu_s"] = time.process_time() - t0
    D = dd.to_denoiser(model, dd.linear_schedule(1000), cond=pairs.ct, clip=1.0)
    region = pairs.brain & ~pairs.lesion
    g = torch.Generator().manual_seed(seed + 1)
    cal["gain"] = {t: xm.denoiser_gain(D, pairs.mr, t, region, g) for t in GAIN_T}
    return cal


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--extra", action="append", default=[], help="NAME=PATH of another conditional checkpoint")
    p.add_argument("--out", default=str(dd.train.checkpoints.CHECKPOINTS / "medical" / "xmod_results.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    pairs = xm.paired_modalities(a.n, 32, seed=1)
    ckpt = dd.train.checkpoints.checkpoint_path
    models = {"x0": ckpt("medical/xmod_diffusion"), "v": ckpt("medical/xmod_diffusion_v")}
    models.update(dict(e.split("=", 1) for e in a.extra))
    out = {"command": "python scripts/precompute_medical_xmod.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "n": a.n, "samples": a.samples, "steps": a.steps, "gain_t": list(GAIN_T), "models": {}}
    sched = dd.linear_schedule(1000)
    s = 2 * xm.MR_NOISE
    out["gaussian_gain"] = {t: xm.gaussian_gain(s, float(sched.alpha_bar[t])) for t in GAIN_T}
    reg = dd.load_model(ckpt("medical/xmod_regression"))
    r = xm.regress(reg, pairs.ct).clamp(-1, 1)
    out["regression"] = {"psnr": float(dd.psnr(r, pairs.mr).mean()), "ssim": float(dd.ssim(r, pairs.mr).mean())}
    for name, path in models.items():
        model = dd.load_model(path)
        manifest = dd.train.checkpoints.read_manifest(path)
        out["models"][name] = {"manifest_steps": manifest.get("steps"), "manifest_command": manifest.get("command"),
                               **evaluate(model, pairs, a.samples, a.steps, a.seed)}
        m = out["models"][name]
        print(f"{name:>4}: mean {m['psnr_mean']:.2f} dB  single {m['psnr_single']:.2f}  std {m['std']:.4f}  "
              f"corr {m['corr_std_error']:.2f}  coverage {m['coverage']:.3f}  gain {[round(v, 3) for v in m['gain'].values()]}  "
              f"{m['cpu_s']:.0f} CPU s", flush=True)
    print("regression", out["regression"], " gaussian gain", {k: round(v, 3) for k, v in out["gaussian_gain"].items()})
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
