"""Chapter 14b's numbers, fuller than the notebook: manifold MMD (RFM vs the naive foil vs the data floor) over
seeds and ODE step counts, the EGNN's equivariance error against the MLP's, and distance statistics of samples.

    OMP_NUM_THREADS=1 python benchmarks/bench_domains_geometry.py [--n 2000] [--seeds 3]   # about 4.5 CPU-minutes

Uses the shipped checkpoints (scripts/train_domains_geometry.sh); prints tables, asserts nothing.
"""
from __future__ import annotations

import argparse
import time

import torch

import diffedu as dd
from diffedu.domains import equivariant as E
from diffedu.domains import manifold as M


def manifold_table(n: int, seeds: int, step_counts=(20, 50, 100)):
    print(f"\n## Manifold MMD x 1e3 (geodesic Laplacian kernel, h = 0.1, 0.3, 1; {n} samples vs {n} data; mean over {seeds} seeds)")
    print(f"{'manifold':8s} {'model':6s} {'steps':>5s} {'MMD':>7s} {'floor':>7s} {'stray %':>7s} {'|x|-1 max':>10s}  mode masses")
    for manifold in M.MANIFOLDS:
        models = {"RFM": M.load_shipped(manifold), "naive": M.load_shipped(manifold, naive=True)}
        for name, model in models.items():
            for steps in step_counts:
                mmd, floor, stray, masses, off = [], [], [], None, 0.0
                for seed in range(seeds):
                    g = torch.Generator().manual_seed(100 + seed)
                    ref, ref2 = M.chapter_data(manifold, n, g), M.chapter_data(manifold, n, g)
                    if name == "RFM":
                        x = M.sample_rfm(model, manifold, M.uniform(manifold, n, g), steps)
                        off = max(off, float((x.norm(dim=1) - 1).abs().max()) if manifold == "sphere" else 0.0)
                    else:
                        x, xs = M.sample_naive(model, manifold, M.naive_source(manifold, n, g, torch.float32), steps, True)
                        off = max(off, float((xs[-1].norm(dim=1) - 1).abs().mean()) if manifold == "sphere" else 0.0)
                    mmd.append(M.geodesic_mmd(manifold, x, ref))
                    floor.append(M.geodesic_mmd(manifold, ref2, ref))
                    stray.append(M.stray_share(manifold, x))
                    masses = M.mode_masses(manifold, x)
                print(f"{manifold:8s} {name:6s} {steps:5d} {1e3 * sum(mmd) / seeds:7.2f} {1e3 * sum(floor) / seeds:7.2f} "
                      f"{100 * sum(stray) / seeds:7.2f} {off:10.2e}  {[round(m, 3) for m in masses]}")
        print(f"{manifold:8s} data weights {M.SPHERE_DATA['weights'] if manifold == 'sphere' else M.TORUS_DATA['weights']}; "
              "stray % of data = 1 by construction; |x|-1 for naive = mean before renormalising")


def equivariance_table(n: int = 200):
    print("\n## Equivariance error max |f(Rx + b) - R f(x)| (float64, random O(2) and translation per cloud)")
    g = torch.Generator().manual_seed(0)
    x = E.polygon_clouds(n, generator=g, dtype=torch.float64)
    for kind in ("egnn", "mlp"):
        net = E.load_shipped(kind).double()
        errs = [E.equivariance_error(net, x, torch.full((n,), t), g) for t in (10, 250, 500, 900)]
        print(f"{kind:5s} params {sum(p.numel() for p in net.parameters()):6d}  max error over t in (10, 250, 500, 900): {max(errs):.2e}")


def distance_table(n: int, seeds: int, step_counts=(50, 100, 250)):
    print(f"\n## Distance statistics ({n} samples of 6 points, DDPM in the zero-CoM subspace, mean over {seeds} seeds)")
    sch = dd.linear_schedule(1000)
    print(f"{'model':5s} {'steps':>5s} {'W1(dist)':>9s} {'floor':>7s} {'shape err':>9s} {'data':>7s} {'CPU s':>6s}")
    for kind in ("egnn", "mlp"):
        D = dd.to_denoiser(E.load_shipped(kind), sch)
        for steps in step_counts:
            w1, fl, se, sd, t0 = [], [], [], [], time.process_time()
            for seed in range(seeds):
                g = torch.Generator().manual_seed(200 + seed)
                ref, ref2 = E.polygon_clouds(n, generator=g), E.polygon_clouds(n, generator=g)
                x = E.sample_edm(D, E.zero_mean_noise((n, 6, 2), g), sch, steps, g)
                w1.append(E.distance_w1(x, ref))
                fl.append(E.distance_w1(ref2, ref))
                se.append(E.shape_error(x))
                sd.append(E.shape_error(ref))
            print(f"{kind:5s} {steps:5d} {sum(w1) / seeds:9.4f} {sum(fl) / seeds:7.4f} {sum(se) / seeds:9.4f} "
                  f"{sum(sd) / seeds:7.4f} {(time.process_time() - t0) / seeds:6.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    manifold_table(args.n, args.seeds)
    equivariance_table()
    distance_table(min(args.n, 2000), args.seeds)
