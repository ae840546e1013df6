"""Memorisation versus generalisation on a finite training set (chapter 03).

A training set {y_i}_{i<n} is itself a distribution, the empirical one (1/n) sum_i delta_{y_i}:
a Gaussian mixture whose components have zero covariance. Its exact denoiser, the *ideal*
denoiser of the training set,
    D_n(x_t) = sum_i softmax_i(-|x_t - a y_i|^2 / (2 s^2)) y_i,    a^2 = alpha_bar, s^2 = 1 - alpha_bar,
tends to the nearest training point as s -> 0, so a sampler driven by it ends on training
points: it memorises. A network trained on the same n points may or may not; this module holds
the plumbing of the chapter's sweep over n that finds out.

Measures of copying, for generated points x: (N, D), the training set train: (n, D) and fresh
held-out data new: (M, D) from the true distribution (never seen in training):
    nn_distance(x, train)   distance of each row of x to its nearest training point: (N,)
    ratio                   median nn distance of x / median nn distance of `new`:
                            about 1 = as close to the training set as new data are (no copying);
                            near 0 = copies of training points
    copies, copies_new      fraction of x (of `new`) within r = 0.1 x (median nn distance of
                            `new`) of a training point: the radius adapts to the spacing of
                            the training set, so the fractions compare across n
and the quality of x as samples of the true law: sliced Wasserstein-1 (metrics.sliced_wasserstein,
p = 1) to a large true sample, beside the same distance for the training set itself (which is
what the ideal denoiser reproduces).
"""
from __future__ import annotations

import torch

from .._validate import check_positive_int, check_real, check_schedule, check_tensor
from ..denoiser import Denoiser, t_batch, to_denoiser
from ..kernels.gmm_denoiser import ideal_denoiser_torch
from ..metrics import sliced_wasserstein
from ..nets.mlp import MLPDenoiser
from ..samplers import ddim
from ..train.loss import train_denoiser

__all__ = ["EmpiricalDenoiser", "nn_distance", "copying", "train_and_sample", "sweep", "summary", "format_summary"]


class EmpiricalDenoiser(Denoiser):
    """The exact E[x_0 | x_t] when x_0 is uniform on the rows of train: (n, D) (the ideal
    denoiser of a data set; kernels.ideal_denoiser_torch computes it without holding all
    (B, n) logits). x0_eps(x (B, D), t) at the schedule's timesteps; at_level exact."""

    def __init__(self, train: torch.Tensor, schedule):
        # every x's posterior mean weighs every training row: one NaN row would poison them all
        check_tensor("train", train, ndim=2, nonempty=True, finite=True)
        self.train, self.schedule = train, check_schedule(schedule)

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        check_tensor("x", x, ndim=2)
        if alpha_bar is None or isinstance(alpha_bar, torch.Tensor):
            alpha_bar = self.schedule.alpha_bar_of(t_batch(t, x), x).reshape(-1)
        return self._x0_eps(x, alpha_bar)

    def at_level(self, x: torch.Tensor, alpha_bar: float, cond=None, interpolate: bool = True):
        ab = check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
        if ab == 1:
            raise ValueError("alpha_bar must be < 1 (eps is undefined at the noise-free level)")
        return self._x0_eps(x, ab)

    def _x0_eps(self, x, ab):
        check_tensor("x", x, ndim=2)
        if x.shape[1] != self.train.shape[1]:
            raise ValueError(f"x must have shape (B, {self.train.shape[1]}) like train, got {tuple(x.shape)}")
        x0 = ideal_denoiser_torch(x, self.train.to(x), ab)
        ab_col = ab if isinstance(ab, float) else ab.to(x).reshape(-1, 1)
        return x0, (x - ab_col ** 0.5 * x0) / (1 - ab_col) ** 0.5


def nn_distance(x: torch.Tensor, train: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Distance of each row of x: (N, D) to its nearest row of train: (n, D); returns (N,)."""
    check_tensor("x", x, ndim=2)
    check_tensor("train", train, ndim=2, nonempty=True, finite=True)      # a NaN row would be every x's nearest
    if x.shape[1] != train.shape[1]:
        raise ValueError(f"x and train must have the same dimension D, got {x.shape[1]} and {train.shape[1]}")
    if len(x) == 0:
        return x.new_zeros(0, dtype=torch.float64)
    return torch.cat([torch.cdist(x[i:i + chunk].double(), train.double()).min(1).values
                      for i in range(0, len(x), chunk)])


def copying(x: torch.Tensor, train: torch.Tensor, new: torch.Tensor) -> dict:
    """{'ratio', 'copies', 'copies_new'} (module doc) for generated x against the training
    set train, with held-out data `new` as the yardstick of 'as close as new data'. Medians over
    the sets: NaN rows are refused rather than allowed to shift them."""
    check_tensor("x", x, ndim=2, nonempty=True, finite=True)
    check_tensor("new", new, ndim=2, nonempty=True, finite=True)
    d_x, d_new = nn_distance(x, train), nn_distance(new, train)
    scale = d_new.median()
    r = 0.1 * scale
    return {"ratio": float(d_x.median() / scale), "copies": float((d_x < r).double().mean()),
            "copies_new": float((d_new < r).double().mean())}


def train_and_sample(train: torch.Tensor, schedule, steps: int, seed: int, x_T: torch.Tensor,
                     sample_steps: int = 50, hidden: int = 128):
    """Train the chapter's small MLP (eps-prediction) on train: (n, D) for `steps` steps and
    draw DDIM samples (eta = 0, `sample_steps` steps) from x_T: (N, D). Returns (model, samples)."""
    model, _ = train_denoiser(MLPDenoiser(dim=train.shape[1], hidden=hidden), train, schedule,
                              steps=steps, seed=seed, progress=False)
    with torch.no_grad():
        return model, ddim(to_denoiser(model, schedule), x_T, schedule, sample_steps)


def sweep(gmm, sizes, schedule, seeds=(0, 1), steps: int = 1000, hidden: int = 128, n_samples: int = 500,
          n_new: int = 2000, n_truth: int = 5000, sample_steps: int = 25) -> list[dict]:
    """Memorisation against training-set size. For each n in `sizes` and each seed, draw a
    training set of n points from `gmm` (a GaussianMixture: the true law), then take n_samples
    points from (i) its ideal denoiser and (ii) an MLP trained on it (train_and_sample), both
    by DDIM from the same x_T, and (iii) fresh data (the yardstick: what generalising looks like).
    Returns one row per (n, seed, who), who in WHO: the `copying` measures, 'sw' (sliced W1 to
    n_truth true samples) and the points 'x' and 'train'."""
    check_positive_int("steps", steps)
    truth = gmm.sample(n_truth, torch.Generator().manual_seed(10 ** 6))
    new = gmm.sample(n_new, torch.Generator().manual_seed(10 ** 6 + 1))
    rows = []
    for n in sizes:
        check_positive_int("n (a training-set size)", n)
        for seed in seeds:
            train = gmm.sample(n, torch.Generator().manual_seed(1000 * seed + n))
            x_T = torch.randn(n_samples, gmm.D, generator=torch.Generator().manual_seed(seed + 7))
            points = {"ideal": ddim(EmpiricalDenoiser(train, schedule), x_T, schedule, sample_steps),
                      "network": train_and_sample(train, schedule, steps, seed, x_T, sample_steps, hidden)[1],
                      "new data": gmm.sample(n_samples, torch.Generator().manual_seed(10 ** 6 + 2 + seed))}
            for who, x in points.items():
                rows.append({"n": n, "seed": seed, "who": who, "x": x, "train": train,
                             "sw": sliced_wasserstein(x, truth, p=1), **copying(x, train, new)})
    return rows


WHO = ("ideal", "network", "new data")
KEYS = ("ratio", "copies", "sw")


def summary(rows: list[dict]) -> dict:
    """{(n, who): {key: (mean, half-range over seeds)}} for key in KEYS, from the sweep's rows."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["n"], r["who"]), []).append(r)
    return {k: {key: (sum(g[key] for g in group) / len(group),
                      (max(g[key] for g in group) - min(g[key] for g in group)) / 2) for key in KEYS}
            for k, group in groups.items()}


def format_summary(table: dict, digits: int = 2) -> str:
    """The summary as a text table: one line per (n, who), `mean ±half-range` per key."""
    labels = {"ratio": "nn-distance ratio", "copies": "copies", "sw": "SW1 to truth"}
    w = 8 + 2 * digits
    lines = [f"{'n':>6}  {'who':9}" + "".join(f"{labels[k]:>{w + 6}}" for k in KEYS)]
    for n in sorted({n for n, _ in table}):
        for who in WHO:
            if (n, who) in table:
                cells = "".join(f"{m:.{digits}f} ±{h:.{digits}f}".rjust(w + 6) for m, h in (table[n, who][k] for k in KEYS))
                lines.append(f"{n:>6}  {who:9}{cells}")
    return "\n".join(lines)
