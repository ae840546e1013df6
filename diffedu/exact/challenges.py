"""Probes of the open challenges the conclusion names (chapter 16, survey section 10.2), each
measured against an exact reference on a Gaussian mixture, so the answer is a number, not an opinion.

    memorisation(gmm, sizes, ...)        the exact denoiser of a finite training set (the "ideal"
                                         denoiser a network approaches as its loss goes to zero)
                                         copies training points, at every training-set size
    oversaturation(gmm, label, ws, ...)  classifier-free guidance with exact denoisers: as w grows,
                                         samples leave the class's high-density region
    distribution_shift(gmm, shift, ...)  a prior's denoiser applied to data it was not fitted to:
                                         its MSE over the Bayes MSE of the true data, per noise level
    sampling_cost(gmm, calls, ...)       DDIM with the exact denoiser: sample quality against the
                                         number of denoiser calls (what distillation buys back)

Shapes: points (N, D) float64; the mixture's dimension D. Every probe takes a seed and is exactly
reproducible.
"""
from __future__ import annotations

import torch

from .._validate import check_int, check_positive_int, check_real, check_schedule, check_tensor
from ..metrics import sliced_wasserstein
from ..samplers import ddim
from .gmm import GaussianMixture
from .guidance import exact_cfg_denoiser
from .memorisation import EmpiricalDenoiser, copying

__all__ = ["memorisation", "oversaturation", "distribution_shift", "sampling_cost", "shifted"]


def _gen(seed):
    return torch.Generator().manual_seed(check_int("seed", seed, lo=0))


def _check_gmm(gmm):
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a diffedu GaussianMixture, got {type(gmm).__name__}")
    return gmm


def memorisation(gmm, sizes, schedule, steps: int = 50, n_samples: int = 500, seed: int = 0) -> list[dict]:
    """For each n in sizes: draw n training points from gmm, sample with DDIM (eta = 0, `steps`
    steps) driven by the exact denoiser of that training set (EmpiricalDenoiser), and measure
    copying against held-out data (exact.memorisation.copying). Returns one dict per n:
    {'n', 'ratio', 'copies', 'copies_new'}."""
    _check_gmm(gmm)
    schedule = check_schedule(schedule)
    check_positive_int("steps", steps)
    check_positive_int("n_samples", n_samples)
    rows = []
    for n in sizes:
        g = _gen(seed + int(check_positive_int("each of sizes", n)))
        train, new = gmm.sample(n, g), gmm.sample(n_samples, g)
        x = ddim(EmpiricalDenoiser(train, schedule), torch.randn(n_samples, gmm.D, generator=g, dtype=torch.float64),
                 schedule, steps)
        rows.append({"n": int(n), **copying(x, train, new)})
    return rows


def oversaturation(gmm, label: int, ws, schedule, steps: int = 50, n: int = 1000, seed: int = 0) -> list[dict]:
    """Classifier-free guidance at each w in ws (diffedu's scale convention: w = 1 is the
    conditional model) with the exact class denoisers of a labelled gmm. Per w:
    {'w', 'log_p': mean log p(x | y) of the samples under the true class law,
     'outside': share of samples below the 1st percentile of log p(x | y) of true class samples,
     'spread': mean distance of the samples to their mean}."""
    _check_gmm(gmm)
    schedule = check_schedule(schedule)
    cls = gmm.condition(label)
    g = _gen(seed)
    true = cls.sample(4 * n, g)
    cut = torch.quantile(cls.log_prob(true), 0.01)
    x_T = torch.randn(n, gmm.D, generator=g, dtype=torch.float64)
    rows = []
    for w in ws:
        w = check_real("each of ws", w, lo=0)
        x = ddim(exact_cfg_denoiser(gmm, schedule, label, w), x_T, schedule, steps)
        lp = cls.log_prob(x)
        rows.append({"w": w, "log_p": float(lp.mean()), "outside": float((lp < cut).double().mean()),
                     "spread": float((x - x.mean(0)).norm(dim=1).mean())})
    return rows


def shifted(gmm, shift) -> GaussianMixture:
    """The same mixture with every mean moved by shift: (D,) (a distribution shift of the data)."""
    _check_gmm(gmm)
    shift = torch.as_tensor(shift, dtype=torch.float64)
    check_tensor("shift", shift, ndim=1, finite=True)
    if shift.shape[0] != gmm.D:
        raise ValueError(f"shift must have shape ({gmm.D},) like the mixture's points, got {tuple(shift.shape)}")
    return GaussianMixture(gmm.weights, gmm.means + shift, gmm.covs, labels=gmm.labels)


def distribution_shift(gmm, shift, schedule, ts, n: int = 4000, seed: int = 0) -> list[dict]:
    """The prior's exact denoiser (fitted to gmm) applied to noisy data from shifted(gmm, shift).
    Per t in ts: {'t', 'mse_prior': MSE of gmm's denoiser, 'mse_bayes': MSE of the shifted
    mixture's own exact denoiser (the best possible), 'ratio': their quotient (>= 1)}."""
    _check_gmm(gmm)
    schedule = check_schedule(schedule)
    test = shifted(gmm, shift)
    g = _gen(seed)
    x0 = test.sample(n, g)
    rows = []
    for t in ts:
        t = check_int("each of ts", t, lo=0, hi=len(schedule) - 1)
        ab = float(schedule.alpha_bar[t])
        xt = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        mse = [float(((m.denoiser(xt, ab) - x0) ** 2).sum(1).mean()) for m in (gmm, test)]
        rows.append({"t": t, "mse_prior": mse[0], "mse_bayes": mse[1], "ratio": mse[0] / mse[1]})
    return rows


def sampling_cost(gmm, calls, schedule, n: int = 2000, seed: int = 0) -> dict:
    """DDIM (eta = 0) with the exact denoiser at each number of calls in `calls`: sliced
    Wasserstein to fresh data. Returns {'sw': {calls: SW}, 'floor': SW between two fresh draws}."""
    _check_gmm(gmm)
    schedule = check_schedule(schedule)
    g = _gen(seed)
    ref, other = gmm.sample(n, g), gmm.sample(n, g)
    x_T = torch.randn(n, gmm.D, generator=g, dtype=torch.float64)
    D = gmm.as_denoiser(schedule)
    sw = lambda x: sliced_wasserstein(x, ref, 256, torch.Generator().manual_seed(seed))   # noqa: E731
    return {"sw": {int(c): sw(ddim(D, x_T, schedule, check_positive_int("each of calls", c))) for c in calls},
            "floor": sw(other)}
