"""Chapter 11b's patch-prior comparison at equal network, steps and pixels per batch (survey 5.1).

    python scripts/precompute_medical_patch.py [--n 4] [--sizes 64 128] [--out diffedu/checkpoints/medical/patch_results.json]

Priors: medical/prior64 (a U-Net on whole 64 x 64 phantoms) and medical/patch_prior64 (the same U-Net
layout, steps, learning rate and pixels per batch, on random 32 x 32 crops of the same phantoms), applied
to the whole image by `patch_denoiser(D, 32, 16)` (9 overlapping patches at 64 x 64, 49 at 128 x 128).
Task: sparse-view CT, 23 views over [0, 180), noiseless, on `phantoms(n, size, seed=1)` (held out;
training used seed 0), solved by DDS (50 network calls, 5 CG steps, eta 0.85; no gradient through the
network) and DPS (50 steps, zeta 0.1 as chapter 11b; its gradient goes through the patches). FBP (ramp)
is the classical reference. At 128 x 128 both priors are used off their training size (the phantoms'
features are twice as many pixels wide): that row is about cost, and says how each prior transfers.
Each (size, prior, solver) runs in a fresh subprocess, so its peak memory (max RSS growth over the loaded
process, MiB) is its own; time is process CPU seconds per image on one thread. No settings were tuned on
these test images.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

VIEWS, STEPS, PATCH, STRIDE = 23, 50, 32, 16


def one(size: int, prior: str, solver: str, n: int, ckpt_dir: str | None = None) -> dict:
    import torch
    torch.set_num_threads(1)
    import diffedu as dd
    from diffedu.inverse.operators.ct import ParallelBeamCT, fbp, signed_measurement, sparse_view_angles
    from diffedu.inverse.posterior.dds import dds
    from diffedu.inverse.posterior.dps import dps
    from diffedu.medical.patches import patch_denoiser
    ph = dd.data.phantoms(n, size, seed=1)
    x = ph.images
    op = ParallelBeamCT(size, sparse_view_angles(VIEWS))
    y = signed_measurement(op.A((x + 1) / 2), op)
    D = dd.pretrained_denoiser(f"medical/{prior}" if ckpt_dir is None else f"{ckpt_dir}/{prior}.safetensors")
    if prior.startswith("patch"):
        D = patch_denoiser(D, PATCH, STRIDE)
    g = torch.Generator().manual_seed(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    if solver == "FBP":
        xh = 2 * fbp(op.A((x + 1) / 2), op) - 1
    elif solver == "DDS":
        xh = dds(y, op, D, D.schedule, steps=STEPS, generator=g)
    else:
        xh = dps(y, op, D, D.schedule, steps=STEPS, zeta=0.1, generator=g)
    cpu = (time.process_time() - t0) / n
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    xh = xh.detach().clamp(-1, 1)
    return {"size": size, "prior": prior, "solver": solver, "psnr": float(dd.psnr(xh, x).mean()),
            "ssim": float(dd.ssim(xh, x).mean()), "cpu_s_per_image": cpu, "peak_MiB": peak}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--solvers", nargs="+", default=["DDS", "DPS"])
    ap.add_argument("--one", nargs=3, metavar=("SIZE", "PRIOR", "SOLVER"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--ckpt-dir", default=None, help="read PRIOR.safetensors from here (default: the shipped ones)")
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1], a.one[2], a.n, a.ckpt_dir)))
        return
    from diffedu.train.checkpoints import CHECKPOINTS, read_manifest
    out = a.out or str(CHECKPOINTS / "medical" / "patch_results.json")
    rows = []
    jobs = [(s, "prior64", "FBP") for s in a.sizes] + [(s, p, v) for s in a.sizes for v in a.solvers
                                                       for p in ("prior64", "patch_prior64")]
    for size, prior, solver in jobs:
        cmd = [sys.executable, __file__, "--one", str(size), prior, solver, "--n", str(a.n)]
        cmd += [] if a.ckpt_dir is None else ["--ckpt-dir", a.ckpt_dir]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{size:4d} {prior:14s} {solver:4s} PSNR {r['psnr']:5.2f} SSIM {r['ssim']:.3f} "
              f"{r['cpu_s_per_image']:6.1f} CPU s/image  peak {r['peak_MiB']:6.1f} MiB", flush=True)
    ck = (lambda p: f"medical/{p}") if a.ckpt_dir is None else (lambda p: f"{a.ckpt_dir}/{p}.safetensors")
    training = {p: {k: read_manifest(ck(p)).get(k) for k in ("steps", "batch_size", "cpu_seconds", "final_loss")}
                for p in ("prior64", "patch_prior64")}
    Path(out).write_text(json.dumps({"command": "python scripts/precompute_medical_patch.py "
                                     + " ".join(argv if argv is not None else sys.argv[1:]),
                                     "views": VIEWS, "steps": STEPS, "patch": PATCH, "stride": STRIDE, "n": a.n,
                                     "training": training, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
