"""Time per sampling step of DDIM and DDPM with a tiny network, beside the network's own time.

    python benchmarks/bench_samplers.py [--batch 256] [--steps 100] [--device cpu]

The difference (sampler step - network forward) is the sampler's overhead: the schedule
lookup, the parameterization conversion, the update and the noise draw. With diffusers
installed, its DDIMScheduler/DDPMScheduler loop on the same network is timed too.
"""
from __future__ import annotations

import argparse
import time

import torch

import diffedu as dd
from diffedu.nets.mlp import MLPDenoiser


def timeit_all(fns: dict, repeats: int = 21) -> dict:
    """Best-of-`repeats` seconds per candidate, the candidates interleaved in every round so that
    load drifting on a shared machine hits all of them alike."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for fn in fns.values():
        fn()                                    # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def diffusers_loop(model, x_T, steps, kind):
    try:
        from diffusers import DDIMScheduler, DDPMScheduler
    except ImportError:
        return None
    sch = (DDIMScheduler if kind == "ddim" else DDPMScheduler)(num_train_timesteps=1000, beta_schedule="linear",
                                                              clip_sample=False)
    sch.set_timesteps(steps)

    def run():
        x = x_T
        for t in sch.timesteps:
            with torch.no_grad():
                eps = model(x, t.expand(len(x)).to(x.device))
            x = sch.step(eps, t, x).prev_sample
        return x
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default=str(dd.device()))
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    dev = torch.device(args.device)
    schedule = dd.linear_schedule(1000)
    model = MLPDenoiser(hidden=args.hidden, depth=2).to(dev).eval()
    D = dd.to_denoiser(model, schedule)
    x_T = torch.randn(args.batch, 2, device=dev)
    t = torch.full((args.batch,), 500, device=dev)

    def net():
        with torch.no_grad():
            for _ in range(args.steps):
                model(x_T, t)

    fns = {"network forward only": net,
           "diffedu DDIM (eta=0)": lambda: dd.ddim(D, x_T, schedule, args.steps),
           "diffedu DDIM (eta=1)": lambda: dd.ddim(D, x_T, schedule, args.steps, eta=1.0),
           "diffedu DDPM": lambda: dd.ddpm(D, x_T, schedule, args.steps)}
    for kind in ("ddim", "ddpm"):
        run = diffusers_loop(model, x_T, args.steps, kind)
        if run is not None:
            fns[f"diffusers {kind.upper()}Scheduler loop"] = run
    rows = list(timeit_all(fns).items())
    base = rows[0][1] / args.steps * 1e6
    print(f"device {dev}, batch {args.batch}, {args.steps} steps, MLP hidden {args.hidden}, threads {torch.get_num_threads()}\n")
    print("| loop | time per step (us) | overhead beyond the network (us) |\n|---|---:|---:|")
    for name, sec in rows:
        per = sec / args.steps * 1e6
        print(f"| {name} | {per:.0f} | {'' if name.startswith('network') else f'{per - base:.0f}'} |")


if __name__ == "__main__":
    main()
