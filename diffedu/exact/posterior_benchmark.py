"""An exact benchmark for posterior samplers: a Gaussian-mixture prior and a linear-Gaussian
measurement, whose posterior is again a Gaussian mixture known in closed form.

Scope: the Gaussian-mixture experiment of Cardoso, Janati, Le Corff & Moulines, "Monte Carlo
guided diffusion for Bayesian linear inverse problems" (MCGdiff, ICLR 2024, section 4.1),
as set up in their public benchmark code:
    prior      25 components with means (8 i, 8 j, 8 i, 8 j, ...), (i, j) in {-2..2}^2, repeated
               over the dimension d (d even), unit covariances, weights w_k = g_k^2 / sum g^2
               with g_k ~ N(0, 1)
    operator   A = U diag(s) V[:d_y] with U, V the singular vectors of a N(0, 1) (d_y, d)
               matrix and s sorted draws of U(0, 1)
    noise      sigma_y = u max(s), u ~ U(0, 1)   (or a fixed sigma_y)
    data       x_true ~ prior, y = A x_true + sigma_y n
The perfect diffusion model is the prior's exact denoiser, so the distance between a
sampler's output and exact posterior samples measures the sampler's own error.
Score: sliced Wasserstein distance (diffedu.metrics) to exact posterior samples. Rows
"prior samples" (ignore y) and "exact posterior resampled" (a second exact draw: the
distance that finite samples alone give) bracket the samplers.

What the table shows (benchmarks/bench_gmm_posterior.py): the posterior is a mixture of a few
far-apart modes, so the score is dominated by how each sampler weighs the modes.
  DPS       replaces p(y | x_t) by N(y; A x0_hat(x_t), .) and steps zeta / ||r|| along its
            gradient; sigma_y never enters, so the strength of the pull is set by zeta, not by
            the likelihood: too weak leaves prior modes, too strong collapses onto the modes
            nearest the measurement. Best on average here, with a large spread over problems.
  DDRM, DiffPIR, RePaint   pin the measured coordinates to the (noised) measurement and let
            the null space follow the prior's dynamics, which choose a mode at high noise,
            where the diffused measurement says little; the modes then come out weighted
            nearly as in the prior among those that fit y, not as in the posterior. The three
            behave alike and get worse as d grows: at d = 800 they are no better than the
            prior, since the d - d_y null-space coordinates decide the denoiser's modes.
  RePaint   as published treats y as noiseless and pastes A^+ y, whose noise sigma_y / s_j
            blows up for small s_j; the benchmark runs the noise-aware variant (repaint.py).
  PnP-HQS   is an optimiser, not a sampler, started here from prior samples. At d = 8 its
            first denoiser call (sigma = 50) erases the start and every run ends at one point
            (a MAP-like estimate): its distance is about the posterior's own spread. At
            d = 800 the modes are 160 apart, sigma = 50 cannot move a start out of its mode,
            and the output keeps the prior's mode weights.
DPS's zeta was picked on these very problems (d = 8, seeds 0-7), which flatters it slightly.
DiffPIR's zeta trades spread for mode weights: on a single Gaussian, zeta = 0.5 gives the right
spread (0.1 too wide, 1 too narrow), while zeta = 1 weighs the modes here slightly better.
Notebook-sized run: `run_benchmark(d=[8, 80], d_y=[1, 2])`, about 3 s on one CPU core.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .._validate import check_choice, check_int, check_nonneg, check_positive_int
from ..denoiser import t_batch
from .gmm import GaussianMixture
from ..metrics import sliced_wasserstein
from ..schedules import NoiseSchedule, linear_schedule
from ..inverse.operators import Dense
from ..inverse.pnp import pnp_hqs
from ..inverse.posterior import ddrm, diffpir, dps, repaint

__all__ = ["GMMProblem", "make_prior", "make_problem", "sample_mixture", "unit_cov_denoiser", "gaussian_denoiser",
           "SAMPLERS", "DEFAULTS", "run_sampler", "run_benchmark", "format_table"]


@dataclass
class GMMProblem:
    """One benchmark instance: y: (1, d_y) = A x_true + sigma_y n, x_true: (1, d)."""
    prior: GaussianMixture
    operator: Dense
    x_true: torch.Tensor
    y: torch.Tensor
    sigma_y: float
    posterior: GaussianMixture
    seed: int

    @property
    def A(self) -> torch.Tensor:
        return self.operator.H


def make_prior(d: int, generator: torch.Generator) -> GaussianMixture:
    """MCGdiff's 25-component mixture in dimension d (even), weights drawn from `generator`."""
    grid = torch.tensor([[8.0 * i, 8.0 * j] for i in range(-2, 3) for j in range(-2, 3)], dtype=torch.float64)
    means = grid.repeat(1, d // 2)                                     # (25, d): (8i, 8j, 8i, 8j, ...)
    weights = torch.randn(25, generator=generator, dtype=torch.float64) ** 2
    return GaussianMixture(weights, means, 1.0)


def make_problem(d: int = 8, d_y: int = 1, seed: int = 0, sigma_y: float | None = None) -> GMMProblem:
    """A benchmark instance (MCGdiff's protocol): prior, Dense operator, x_true, y, sigma_y and
    the exact posterior. sigma_y=None draws it as u max(s), u ~ U(0, 1), as the paper does."""
    check_positive_int("d", d)
    check_positive_int("d_y", d_y)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if d % 2:
        raise ValueError(f"d must be even (the means repeat a 2D grid), got {d}")
    if d_y > d:
        raise ValueError(f"d_y must be <= d, got d_y={d_y}, d={d}")
    g = torch.Generator().manual_seed(seed)
    prior = make_prior(d, g)
    # operator: random singular vectors, singular values sorted U(0, 1)
    U, _, Vh = torch.linalg.svd(torch.randn(d_y, d, generator=g, dtype=torch.float64), full_matrices=True)
    s = torch.sort(torch.rand(d_y, generator=g, dtype=torch.float64), descending=True).values
    H = U @ torch.diag(s) @ Vh[:d_y]
    if sigma_y is None:
        sigma_y = float(torch.rand(1, generator=g, dtype=torch.float64)) * float(s.max())
    sigma_y = check_nonneg("sigma_y", sigma_y)
    if sigma_y == 0:
        raise ValueError("sigma_y must be > 0 for the exact posterior (a noiseless y makes it singular)")
    x_true = sample_mixture(prior, 1, g).double()
    y = x_true @ H.T + sigma_y * torch.randn(1, d_y, generator=g, dtype=torch.float64)
    posterior = prior.posterior(H, y[0], sigma_y)
    return GMMProblem(prior, Dense(H), x_true.float(), y.float(), sigma_y, posterior, seed)


def unit_cov_denoiser(prior: GaussianMixture, schedule: NoiseSchedule):
    """The exact denoiser D(x_t, t) of a mixture with unit covariances, in closed form and
    differentiable: x_t ~ sum_k w_k N(a mu_k, I), so E[x_0 | x_t] = a x_t + (1 - a^2) sum_k r_k mu_k
    with r = softmax(log w_k - |x_t - a mu_k|^2 / 2). The same as `prior.as_denoiser(schedule)`
    (tested), without the per-call Cholesky factorisations that make d = 800 slow."""
    if not torch.allclose(prior.covs, torch.eye(prior.D, dtype=torch.float64).expand_as(prior.covs)):
        raise ValueError("unit_cov_denoiser needs a mixture with identity covariances")
    logw, means = prior.weights.log(), prior.means

    def D(x: torch.Tensor, t) -> torch.Tensor:
        prior._check_x(x)
        t = t_batch(t, x)
        if len(t) and bool((t == t[0]).all()):                   # one level: plain-number arithmetic
            ab = float(schedule.alpha_bar_of(t[:1])[0])
        else:                                                    # rows at different levels: (B, 1)
            ab = schedule.alpha_bar_of(t, x)
        return _unit_cov_x0(x, ab, logw.to(x), means.to(x))
    return D


def _unit_cov_x0(x, ab, logw, means):
    a = ab ** 0.5
    d2 = (x * x).sum(1, keepdim=True) - 2 * a * x @ means.T + ab * (means * means).sum(1)   # (B, K)
    r = torch.softmax(logw - 0.5 * d2, dim=1)
    return a * x + (1 - ab) * (r @ means)


def sample_mixture(gmm: GaussianMixture, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, D) float32 of a mixture, one Cholesky factor per drawn component and no
    (n, D, D) gather (GaussianMixture.sample's memory grows as n D^2, 5 GB at n=1000, D=800)."""
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    n = check_int("n", n, lo=0)
    if n == 0:
        return torch.empty(0, gmm.D)
    k = torch.multinomial(gmm.weights, n, replacement=True, generator=generator)
    z = torch.randn(n, gmm.D, generator=generator, dtype=torch.float64)
    x = torch.empty(n, gmm.D, dtype=torch.float64)
    eye = torch.eye(gmm.D, dtype=torch.float64)
    for j in torch.unique(k).tolist():
        rows = k == j
        L = torch.linalg.cholesky(gmm.covs[j] + 1e-12 * eye)
        x[rows] = gmm.means[j] + z[rows] @ L.T
    return x.float()


def gaussian_denoiser(prior: GaussianMixture):
    """The prior's exact Gaussian denoiser in the noise-level convention of PnP:
    E[x | x + sigma n = v] = D_t(sqrt(ab) v) at ab = 1 / (1 + sigma^2) (x_t = sqrt(ab) v is the
    VP variable). v: (B, d), sigma: float."""
    logw, means = prior.weights.log(), prior.means

    def denoiser(v: torch.Tensor, sigma) -> torch.Tensor:
        prior._check_x(v, "v")
        ab = 1.0 / (1.0 + check_nonneg("sigma", sigma) ** 2)
        return _unit_cov_x0(v * ab ** 0.5, ab, logw.to(v), means.to(v))
    return denoiser


# Defaults per sampler: step counts that keep d = 8, 1000 samples well under a second each on
# one CPU core; DDRM and RePaint keep the papers' eta, eta_b and jump pattern (fewer steps);
# DPS's zeta was picked on d = 8, d_y in {1, 2}, seeds 0-7 (best of 0.05, 0.1, 0.3, 1);
# DiffPIR's zeta = 0.5 gives the right spread on a Gaussian prior (0.1: ~1.3x too wide, 1: 0.7x).
DEFAULTS = {
    "DPS": dict(steps=200, zeta=0.1),
    "DDRM": dict(steps=100, eta=0.85, eta_b=1.0),
    "DiffPIR": dict(steps=100, lam=1.0, zeta=0.5),
    "RePaint": dict(steps=50, jump_length=5, jump_n_sample=5, noise_aware=True),
    "PnP-HQS": dict(iters=40, lam=0.23, sigma_max=50.0),
}
SAMPLERS = ("prior samples", "exact posterior resampled", "DPS", "DDRM", "DiffPIR", "RePaint", "PnP-HQS")


def run_sampler(name: str, problem: GMMProblem, n_samples: int = 1000, generator: torch.Generator | None = None,
                schedule: NoiseSchedule | None = None, **options) -> torch.Tensor:
    """n_samples approximate posterior samples (n_samples, d) from sampler `name` (one of
    SAMPLERS) on `problem`, with DEFAULTS[name] updated by `options`."""
    check_choice("sampler", name, SAMPLERS)
    check_positive_int("n_samples", n_samples)
    g = generator if generator is not None else torch.Generator().manual_seed(problem.seed + 1)
    if name == "prior samples":
        return sample_mixture(problem.prior, n_samples, g)
    if name == "exact posterior resampled":
        return sample_mixture(problem.posterior, n_samples, g)
    opts = dict(DEFAULTS[name])
    unknown = set(options) - set(opts)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {name}; allowed: {sorted(opts)}")
    opts.update(options)
    schedule = schedule if schedule is not None else linear_schedule(1000)
    op, y, sy = problem.operator, problem.y.expand(n_samples, -1), problem.sigma_y
    D = unit_cov_denoiser(problem.prior, schedule)
    if name == "DPS":
        return dps(y, op, D, schedule, generator=g, **opts)
    if name == "DDRM":
        return ddrm(y, op, D, schedule, sigma_y=sy, generator=g, **opts)
    if name == "DiffPIR":
        return diffpir(y, op, D, schedule, sigma_y=sy, generator=g, **opts)
    if name == "RePaint":
        noise_aware = opts.pop("noise_aware")
        return repaint(y, op, D, schedule, sigma_y=sy if noise_aware else 0.0, generator=g, **opts)
    # PnP-HQS (DPIR): a deterministic optimiser; random starts from the prior give its spread
    sig = torch.logspace(math.log10(opts["sigma_max"]), math.log10(max(sy, 1e-3)), opts["iters"],
                         dtype=torch.float64)
    x_init = sample_mixture(problem.prior, n_samples, g)
    return pnp_hqs(y, op, gaussian_denoiser(problem.prior), sigma_y=sy, sigmas=sig, lam=opts["lam"], x_init=x_init)


def run_benchmark(samplers=None, d: int = 8, d_y: int = 1, n_samples: int = 1000, seeds=(0,),
                  n_proj: int = 256, sigma_y: float | None = None, options: dict | None = None,
                  threads: int | None = 1) -> list[dict]:
    """Sliced Wasserstein distance from each sampler's n_samples to n_samples exact posterior
    samples, per seed (one problem per seed). samplers: names from SAMPLERS (default all);
    d, d_y: ints or lists of them (every pair is run); options: {sampler: {option: value}}.
    threads: torch threads while it runs, restored after (None: leave them). The loops make
    many small tensor ops, for which one thread is fastest: d in {8, 80}, d_y in {1, 2} takes
    ~3 s with 1 thread and ~60 s with 2 on a busy 2-core machine (oversubscription).
    Returns rows {'sampler', 'd', 'd_y', 'seed', 'sw', 'seconds'}; see `format_table`."""
    if threads is None:
        return _run_benchmark(samplers, d, d_y, n_samples, seeds, n_proj, sigma_y, options)
    check_positive_int("threads", threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_benchmark(samplers, d, d_y, n_samples, seeds, n_proj, sigma_y, options)
    finally:
        torch.set_num_threads(before)


def _run_benchmark(samplers, d, d_y, n_samples, seeds, n_proj, sigma_y, options):
    samplers = list(SAMPLERS) if samplers is None else list(samplers)
    for name in samplers:
        check_choice("sampler", name, SAMPLERS)
    options = options or {}
    for name in options:
        check_choice("sampler in options", name, SAMPLERS)
    ds = [d] if isinstance(d, int) else list(d)
    dys = [d_y] if isinstance(d_y, int) else list(d_y)
    rows = []
    for dd_ in ds:
        for dy in dys:
            for seed in seeds:
                prob = make_problem(dd_, dy, seed, sigma_y)
                ref = sample_mixture(prob.posterior, n_samples, torch.Generator().manual_seed(10_000 + seed))
                for name in samplers:
                    t0 = time.perf_counter()
                    x = run_sampler(name, prob, n_samples, torch.Generator().manual_seed(seed + 1),
                                    **options.get(name, {}))
                    sec = time.perf_counter() - t0
                    sw = sliced_wasserstein(x.float(), ref, n_proj, torch.Generator().manual_seed(seed))
                    rows.append(dict(sampler=name, d=dd_, d_y=dy, seed=seed, sw=sw, seconds=sec))
    return rows


def format_table(rows: list[dict], key: str = "sw", std: bool = True, digits: int = 2) -> str:
    """Markdown table: one row per sampler, one column per (d, d_y), cells the mean of
    row[key] over seeds ('mean ± std' when std and there are several seeds)."""
    names = list(dict.fromkeys(r["sampler"] for r in rows))
    cols = list(dict.fromkeys((r["d"], r["d_y"]) for r in rows))
    head = "| sampler | " + " | ".join(f"d={d}, d_y={dy}" for d, dy in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name in names:
        cells = []
        for col in cols:
            v = torch.tensor([float(r[key]) for r in rows if r["sampler"] == name and (r["d"], r["d_y"]) == col])
            if len(v) == 0:
                cells.append("")
            elif len(v) == 1 or not std:
                cells.append(f"{v.mean().item():.{digits}f}")
            else:
                cells.append(f"{v.mean().item():.{digits}f} ± {v.std().item():.{digits}f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
