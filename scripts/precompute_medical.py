"""Chapter 11's tables and widget data, precomputed (the notebook loads them; RETRAIN=True reruns this).

    python scripts/precompute_medical.py [--size 64] [--prior medical/prior64] [--views 4 8 23 60]
                                         [--out diffedu/checkpoints/medical/ch11_results] [--quick]

Writes <out>.json: the tables, settings, CPU seconds, this command, and under "images" the
pictures the chapter's sliders show (each quantised to 8 bits over its own [lo, hi] and stored as
base64; JSON rather than a .safetensors file, which diffedu would list among its network
checkpoints). `load_images` reads them back. One thread, CPU; ~6 CPU-minutes at 64 x 64
(--quick: a smoke run on 2 phantoms with few steps, for testing the script). `--size 32 --prior
unet_phantoms --views 4 8 23` reruns the chapter's earlier 32 x 32 study (~3 CPU-minutes; that version tuned DPS's
zeta once per modality on (0.03, 0.1, 0.3) and TV's lam on (0.003 ... 0.3), so its DPS / TV rows may differ).

Protocol. Prior: `--prior` (default `medical/prior64`, a U-Net trained on `phantoms(2000, 64, seed=0)`;
`unet_phantoms` is the 32 x 32 one, trained on `phantoms(2000, 32, seed=0)`).
Test set: `phantoms(N_TEST, SIZE, seed=1234)`; the hyperparameters of TV (lam) and DPS (zeta) are
tuned per setting on a separate validation set `phantoms(N_VAL, SIZE, seed=99)`, never on the test images.
Noiseless measurements of the physical image u = (x + 1) / 2 in [0, 1]; the baselines (FBP,
zero-filled) reconstruct u; the solvers get the measurement of x = 2 u - 1 (`signed_measurement`).
PSNR / SSIM on [-1, 1] images (data range 2), clamped to [-1, 1].
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

import torch

import diffedu as dd
from diffedu.inverse.classical import tv_reconstruct
from diffedu.inverse.operators.ct import ParallelBeamCT, fbp, signed_measurement, sparse_view_angles
from diffedu.inverse.operators.mri import MultiCoilMRI, SingleCoilMRI, cartesian_mask, coil_sensitivities, zero_filled
from diffedu.inverse.posterior.ddrm import ddrm
from diffedu.inverse.posterior.dds import dds
from diffedu.inverse.posterior.dps import dps
from diffedu.inverse.posterior.song_mc import song_mc
from diffedu.metrics import psnr, ssim

SIZE, PRIOR, VIEWS = 64, "medical/prior64", (4, 8, 23, 60)
N_TEST, N_VAL, SEED_TEST, SEED_VAL = 6, 2, 1234, 99
STEPS = {"Song et al.": 100, "DPS": 100, "DDS": 50, "DDRM": 50}
TV_LAMS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
DPS_ZETAS = (0.03, 0.1, 0.3, 1.0, 3.0)


def pack_images(images: dict) -> dict:
    """{key: tensor} -> {key: {"shape": [...], "lo": min, "hi": max, "b64": base64 of uint8 round(255 (v - lo) / (hi - lo))}}
    (8 bits per pixel: error <= (hi - lo) / 510, 0.004 on a [-1, 1] image; display only, every number is computed
    before packing)."""
    out = {}
    for k, v in images.items():
        v = v.detach().float()
        lo, hi = round(float(v.min()), 4), round(float(v.max()), 4)
        q = ((v - lo) / max(hi - lo, 1e-8) * 255).round().clamp(0, 255).to(torch.uint8)
        out[k] = {"shape": list(v.shape), "lo": lo, "hi": hi, "b64": base64.b64encode(q.numpy().tobytes()).decode()}
    return out


def unpack_image(v: dict) -> torch.Tensor:
    """One entry of pack_images -> float32 tensor of v["shape"]."""
    q = torch.frombuffer(bytearray(base64.b64decode(v["b64"])), dtype=torch.uint8).float()
    return (q / 255 * (v["hi"] - v["lo"]) + v["lo"]).reshape(v["shape"])


def load_images(results: dict) -> dict:
    """The inverse of pack_images (to 8 bits): {key: float32 tensor}."""
    return {k: unpack_image(v) for k, v in results["images"].items()}


def settings():
    """name -> (operator, kind): CT at each of VIEWS views, single-coil MRI 4x / 8x, 4-coil MRI 8x."""
    out = {f"CT {v} views": (ParallelBeamCT(SIZE, sparse_view_angles(v)), "ct") for v in VIEWS}
    out["MRI 4x"] = (SingleCoilMRI(cartesian_mask(SIZE, 4, 0.08)), "mri")
    out["MRI 8x"] = (SingleCoilMRI(cartesian_mask(SIZE, 8, 0.04)), "mri")
    out["MRI 8x, 4 coils"] = (MultiCoilMRI(cartesian_mask(SIZE, 8, 0.04), coil_sensitivities(4, SIZE)), "mri")
    return out


def baseline(p, op, kind):
    """FBP (CT) or zero-filled / RSS (MRI) of the intensity measurement p, mapped to [-1, 1]."""
    return 2 * (fbp(p, op) if kind == "ct" else zero_filled(p, op)) - 1


def scores(xr, x):
    xr = xr.clamp(-1, 1)
    return float(psnr(xr, x).mean()), float(ssim(xr, x).mean())


def timed(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def gen():
    return torch.Generator().manual_seed(0)


def solvers(D, S, op, zeta, steps=None):
    st = dict(STEPS, **(steps or {}))
    out = {"Song et al.": lambda y: song_mc(y, op, D, S, steps=st["Song et al."], generator=gen()),
           "DPS": lambda y: dps(y, op, D, S, steps=st["DPS"], zeta=zeta, generator=gen()),
           "DDS": lambda y: dds(y, op, D, S, steps=st["DDS"], generator=gen())}
    if op.has_svd:
        out["DDRM"] = lambda y: ddrm(y, op, D, S, sigma_y=0.0, steps=st["DDRM"], generator=gen())
    return out


def tune_tv(op, kind, xv):
    yv = op.A(xv)
    iters = 1000 if kind == "ct" else 500
    best = max(TV_LAMS, key=lambda lam: scores(tv_reconstruct(yv, op, lam=lam, iters=iters), xv)[0])
    return best, iters


def tune_dps(D, S, op, xv, steps):
    yv = op.A(xv)
    return max(DPS_ZETAS, key=lambda z: scores(dps(yv, op, D, S, steps=steps, zeta=z, generator=gen()), xv)[0])


def main(argv=None):
    global N_TEST, N_VAL, SIZE, PRIOR, VIEWS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="diffedu/checkpoints/medical/ch11_results")
    ap.add_argument("--size", type=int, default=SIZE, help="image size (default %(default)s)")
    ap.add_argument("--prior", default=PRIOR, help="dd.pretrained_denoiser name of the prior (default %(default)s)")
    ap.add_argument("--views", type=int, nargs="+", default=list(VIEWS), help="CT view counts (default %(default)s)")
    ap.add_argument("--n-test", type=int, default=N_TEST, help="held-out test phantoms (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 phantoms, few steps")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    SIZE, PRIOR, VIEWS, N_TEST = a.size, a.prior, tuple(a.views), a.n_test
    if a.quick:
        N_TEST, N_VAL = 2, 1
        STEPS.update({k: 5 for k in STEPS})
    t_start = time.process_time()
    dd.seed_everything(0)
    D = dd.pretrained_denoiser(PRIOR)
    S = D.schedule
    x = dd.data.phantoms(N_TEST, SIZE, seed=SEED_TEST).images
    xv = dd.data.phantoms(N_VAL, SIZE, seed=SEED_VAL).images
    u = (x + 1) / 2
    res = {"protocol": __doc__.split("Protocol.")[1].strip(), "command": "python " + " ".join(sys.argv),
           "size": SIZE, "prior": PRIOR, "views": list(VIEWS),
           "n_test": N_TEST, "seed_test": SEED_TEST, "n_val": N_VAL, "seed_val": SEED_VAL,
           "steps": STEPS, "table": [], "tuned": {}}
    images = {}
    for name, (op, kind) in settings().items():
        p = op.A(u)
        y = signed_measurement(p, op)
        rows = []
        xb, sec = timed(lambda: baseline(p, op, kind))
        rows.append(("FBP" if kind == "ct" else "zero-filled", xb, sec, 0))
        lam, iters = tune_tv(op, kind, xv)
        xt, sec = timed(lambda: tv_reconstruct(y, op, lam=lam, iters=iters))
        rows.append(("TV", xt, sec, 0))
        zeta = tune_dps(D, S, op, xv, STEPS["DPS"])
        res["tuned"][name] = {"tv_lam": lam, "tv_iters": iters, "dps_zeta": zeta}
        for meth, fn in solvers(D, S, op, zeta).items():
            xr, sec = timed(lambda: fn(y))
            rows.append((meth, xr, sec, STEPS[meth]))
        for meth, xr, sec, calls in rows:
            ps, ss = scores(xr, x)
            res["table"].append({"setting": name, "method": meth, "psnr": round(ps, 2), "ssim": round(ss, 3),
                                 "calls": calls, "cpu_s_per_image": round(sec / N_TEST, 3)})
            print(f"{name:16s} {meth:12s} {ps:6.2f} dB  SSIM {ss:5.3f}  {sec / N_TEST:6.2f} CPU-s/img", flush=True)
    images["truth"] = x[:1].half()
    # --- stability at CT 8 views, on the first 2 test phantoms (CPU budget)
    op = ParallelBeamCT(SIZE, sparse_view_angles(8))
    x4 = x[:2]
    y4 = op.A(x4)
    zeta8 = res["tuned"]["CT 8 views"]["dps_zeta"] if 8 in VIEWS else tune_dps(D, S, op, xv, STEPS["DPS"])
    res["dps_zeta_sweep"] = [{"zeta": z, "psnr": round(scores(dps(y4, op, D, S, steps=100, zeta=z, generator=gen()), x4)[0], 2)}
                             for z in (0.01, 0.03, 0.1, 0.3, 1.0)]
    res["dds_cg_sweep"] = [{"cg_iters": m, "psnr": round(scores(dds(y4, op, D, S, steps=50, cg_iters=m, generator=gen()), x4)[0], 2)}
                           for m in (0, 1, 2, 5, 10, 20)]
    drop = []
    for steps in (10, 25, 50, 100):
        for meth, fn in solvers(D, S, op, zeta8, {k: steps for k in STEPS}).items():
            drop.append({"steps": steps, "method": meth, "psnr": round(scores(fn(y4), x4)[0], 2)})
    res["steps_drop"] = drop
    print("sweeps done", flush=True)
    # --- widget data: one test phantom; CT views, MRI acceleration, Song's lambda
    x1, u1 = x[:1], u[:1]
    views = tuple(sorted({2, 4, 8, 16, 23, 32, *VIEWS}))
    for v in views:
        opv = ParallelBeamCT(SIZE, sparse_view_angles(v))
        images[f"views/{v}/fbp"] = (2 * fbp(opv.A(u1), opv) - 1).half()
        images[f"views/{v}/dds"] = dds(opv.A(x1), opv, D, S, steps=STEPS["DDS"], generator=gen()).half()
    accels = (2, 4, 6, 8, 12)
    for r in accels:
        m = cartesian_mask(SIZE, r, 0.08 if r <= 4 else 0.04)
        opm = SingleCoilMRI(m)
        images[f"accel/{r}/mask"] = m.half()
        images[f"accel/{r}/zf"] = (2 * zero_filled(opm.A(u1), opm) - 1).half()
        images[f"accel/{r}/dds"] = dds(opm.A(x1), opm, D, S, steps=STEPS["DDS"], generator=gen()).half()
    lams = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
    lam_rows = []
    for lam in lams:
        xr = song_mc(y4, op, D, S, lam=lam, steps=STEPS["Song et al."], generator=gen())
        images[f"lambda/{lam}"] = xr[:1].half()
        lam_rows.append({"lam": lam, "psnr": round(scores(xr, x4)[0], 2)})
    res["lambda_sweep"] = lam_rows
    res["widget_grid"] = {"views": list(views), "accelerations": list(accels), "lambdas": list(lams)}
    res["cpu_seconds_total"] = round(time.process_time() - t_start, 1)
    res["images"] = pack_images(images)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}.json in {res['cpu_seconds_total']} CPU-s")


if __name__ == "__main__":
    main()
