"""Chapter 14 (discrete and low-rank data), fuller than the notebook; prints tables, never pass/fail.

    python benchmarks/bench_domains.py discrete    # bigram TV vs steps: networks, exact denoiser, foils (~1 CPU-min)
    python benchmarks/bench_domains.py limit       # the many-step limit of the absorbing NELBO, L = 10 (~20 CPU-s)
    python benchmarks/bench_domains.py lowrank     # memorisation -> generalisation for d = 1, 2, 4 (~15 CPU-min)
    python benchmarks/bench_domains.py all

The low-rank sweep trains the chapter-03 MLP on n = m d points for m in MULTIPLES, so the transition
can be read against n / d: Wang et al. (2024) predict a sample complexity linear in d.
"""
from __future__ import annotations

import sys
import time

import torch

from diffedu.domains import discrete as dc
from diffedu.domains import discrete_models as dm
from diffedu.domains import discrete_train as dt
from diffedu.domains import lowrank as lr

MULTIPLES = (1, 2, 4, 8, 32)
DIMS = (1, 2, 4)
SEEDS = (0, 1)


def discrete(n: int = 4000, steps=(1, 2, 4, 8, 16, 32, 64, 128)):
    import diffedu as dd
    chain, P, g = dt.markov_chain(), dt.markov_chain().P, torch.Generator().manual_seed(0)
    nets = {"MDLM network": dm.net_denoiser(dd.pretrained("domains/discrete_markov_mdlm")), "exact": chain.denoiser()}
    marg = dm.independent_denoiser(torch.full((16, 4), 0.25, dtype=torch.float64))
    print(f"bigram TV to the true chain, {n} sequences of length 16 (data floor "
          f"{dm.bigram_tv(chain.sample(n, 16, g), P):.4f}; independent tokens "
          f"{dm.bigram_tv(dc.mdlm_sample(marg, n, 16, 4, 16, g), P):.4f})")
    print(f"{'steps':>6}" + "".join(f"{k:>16}" for k in nets))
    with torch.no_grad():
        for s in steps:
            print(f"{s:6d}" + "".join(f"{dm.bigram_tv(dc.mdlm_sample(D, n, 16, 4, s, g), P):16.4f}" for D in nets.values()))
        uni = dm.net_denoiser(dd.pretrained("domains/discrete_markov_uniform"))
        proc = dc.d3pm("uniform", 4, dt.T_UNIFORM, "cosine")
        print(f"uniform D3PM network, {dt.T_UNIFORM} steps: {dm.bigram_tv(dc.d3pm_sample(proc, uni, n, 16, g), P):.4f}; "
              f"exact uniform denoiser: {dm.bigram_tv(dc.d3pm_sample(proc, chain.denoiser('uniform'), n, 16, g), P):.4f}")


def limit(L: int = 10, grid=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)):
    chain = dt.markov_chain()
    x = chain.sample(8, L, torch.Generator().manual_seed(1))
    nll = -chain.log_prob(x)
    cont = dc.masked_nelbo_exact(chain.denoiser(), x, 4)
    print(f"L = {L}: mean -log p(x) = {float(nll.mean()):.4f}, continuous NELBO = {float(cont.mean()):.4f}")
    print(f"{'T':>6}{'NELBO - NLL':>14}{'x T':>10}")
    for T in grid:
        gap = float((dc.masked_nelbo_exact(chain.denoiser(), x, 4, steps=T) - nll).mean())
        print(f"{T:6d}{gap:14.5f}{gap * T:10.3f}")


def lowrank(dims=DIMS, multiples=MULTIPLES, seeds=SEEDS, steps: int = 2000):
    print(f"memorisation -> generalisation, K=1, D=8, MLP x0-prediction, {steps} steps, seeds {seeds}")
    print(f"{'d':>3}{'n':>5}{'n/d':>5}{'novel':>8}{'ratio':>8}{'angle':>8}{'off':>7}{'ideal novel':>13}")
    for d in dims:
        mix = lr.sweep_mixture(K=1, D=8, d=d)
        rows = lr.transition_sweep(mix, [m * d for m in multiples], seeds, steps)
        for m in multiples:
            net = [r for r in rows if r["n"] == m * d and r["who"] == "network"]
            ideal = [r for r in rows if r["n"] == m * d and r["who"] == "ideal"]
            avg = lambda rs, k: sum(r[k] for r in rs) / len(rs)      # noqa: E731
            print(f"{d:3d}{m * d:5d}{m:5d}{avg(net, 'novel'):8.2f}{avg(net, 'ratio'):8.2f}{avg(net, 'angle'):8.1f}{avg(net, 'off'):7.3f}"
                  f"{avg(ideal, 'novel'):13.2f}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    for name, fn in (("discrete", discrete), ("limit", limit), ("lowrank", lowrank)):
        if what in (name, "all"):
            start = time.process_time()
            fn()
            print(f"[{name}: {time.process_time() - start:.0f} CPU s]\n")
