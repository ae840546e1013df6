"""Guidance graded against exact answers: a labelled Gaussian mixture gives the exact class
denoisers E[x0 | x_t, y], the exact noisy classifier p(y | x_t), and the tilted density
p(x | y)^w p(x)^(1 - w) on a grid, so that what CFG samples can be compared with what it is
often said to sample (chapter 05). The guides themselves are in diffedu.guidance.
"""
from __future__ import annotations

import numbers

import torch

from .._validate import check_choice, check_positive_int, check_real, check_schedule, check_tensor
from ..denoiser import Denoiser, t_batch
from ..guidance import _labels, classifier_free_guidance
from ..metrics import sliced_wasserstein
from ..samplers import ddim, ddpm
from ..schedules import NoiseSchedule, linear_schedule
from .gmm import GaussianMixture

__all__ = ["GMMClassDenoiser", "gmm_class_denoiser", "gmm_classifier", "exact_cfg_denoiser",
           "tilted_log_density", "tilted_density_grid", "sample_from_grid", "compare_cfg_with_tilted"]


def _check_labelled(gmm):
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    if gmm.labels is None:
        raise ValueError("gmm has no labels; build it with labels=(K,) (the class of each component)")


class GMMClassDenoiser(Denoiser):
    """The exact E[x0 | x_t, y] of a labelled mixture (y = null_label or None: E[x0 | x_t]).
    D(x_t, t, cond=None), x_t: (B, D), t: original timesteps of `schedule` (the contract)."""

    def __init__(self, gmm: GaussianMixture, schedule: NoiseSchedule, null_label: int = -1):
        self.gmm, self.schedule, self.null_label = gmm, schedule, null_label
        self._parts = {}

    def _part(self, label: int) -> GaussianMixture:
        if label == self.null_label:
            return self.gmm
        if label not in self._parts:
            self._parts[label] = self.gmm.condition(label)
        return self._parts[label]

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        check_tensor("x", x, ndim=2)
        t = t_batch(t, x).cpu()
        c = torch.full((len(x),), self.null_label, dtype=torch.long) if cond is None else _labels(cond, x).cpu()
        known = set(self.gmm.labels.tolist()) | {self.null_label}
        unknown = sorted(set(c.tolist()) - known)
        if unknown:
            raise ValueError(f"cond holds label(s) {unknown[:5]} that no component has; allowed: "
                             f"{sorted(known - {self.null_label})} or the null label {self.null_label}")
        x0 = torch.empty_like(x)
        for tv in torch.unique(t):
            for cv in torch.unique(c[t == tv]):
                rows = ((t == tv) & (c == cv)).nonzero()[:, 0].to(x.device)
                x0[rows] = self._part(int(cv)).denoiser(x[rows], float(self.schedule.alpha_bar_of(tv)))
        ab = self.schedule.alpha_bar_of(t, x)
        return x0, (x - ab.sqrt() * x0) / (1 - ab).sqrt()


def gmm_class_denoiser(gmm: GaussianMixture, schedule: NoiseSchedule, null_label: int = -1) -> GMMClassDenoiser:
    """Exact class-conditional denoiser D(x_t, t, y) of a labelled mixture (null_label: unconditional)."""
    _check_labelled(gmm)
    check_schedule(schedule)
    return GMMClassDenoiser(gmm, schedule, null_label)


def gmm_classifier(gmm: GaussianMixture, schedule: NoiseSchedule):
    """The exact noisy classifier log p(y | x_t) = log sum_{k: label_k = y} r_k(x_t) as a callable
    (x_t (B, D), t) -> (B, C) log-probabilities (C = max label + 1), differentiable in x_t."""
    _check_labelled(gmm)
    check_schedule(schedule)
    C = int(gmm.labels.max()) + 1
    onehot = torch.nn.functional.one_hot(gmm.labels, C).double()          # (K, C)

    def log_probs(x, t):
        gmm._check_x(x)
        t = t_batch(t, x).cpu()
        out = []
        for tv in torch.unique(t):
            rows = (t == tv).nonzero()[:, 0].to(x.device)
            ab = float(schedule.alpha_bar_of(tv))
            logp_k, _ = gmm.noisy(ab)._component_logpdf(x[rows].to(torch.float64).cpu())   # (n, K)
            joint = torch.logsumexp(logp_k[:, :, None] + onehot.log()[None], dim=1)     # (n, C)
            out.append((rows, joint - torch.logsumexp(joint, 1, keepdim=True)))
        res = torch.empty(len(x), C, dtype=torch.float64)
        if len(out) == 1:
            return out[0][1].to(x.dtype).to(x.device)
        for rows, v in out:
            res[rows.cpu()] = v
        return res.to(x.dtype).to(x.device)
    return log_probs


def exact_cfg_denoiser(gmm: GaussianMixture, schedule: NoiseSchedule, label: int, w: float,
                       convention: str = "scale"):
    """Classifier-free guidance with the exact conditional and unconditional denoisers of a
    labelled mixture, bound to `label`: D_w(x_t, t) for any sampler."""
    return classifier_free_guidance(gmm_class_denoiser(gmm, schedule, -1), w, -1, label, convention)


# -- the tilted density p(x | y)^w p(x)^(1 - w), on a grid --------------------------------------
def _grid_axes(lim, n):
    if isinstance(lim, (numbers.Real, torch.Tensor)) and not isinstance(lim, bool) and not (
            isinstance(lim, torch.Tensor) and lim.numel() != 1):
        lim = check_real("lim", lim, lo=0, lo_open=True)
        lim = (-lim, lim, -lim, lim)
    if not isinstance(lim, (tuple, list)) or len(lim) != 4:
        raise ValueError(f"lim must be a positive number or (xmin, xmax, ymin, ymax), got {lim!r}")
    lim = [check_real("lim", v) for v in lim]
    if not (lim[0] < lim[1] and lim[2] < lim[3]):
        raise ValueError(f"lim must be a positive number or (xmin, xmax, ymin, ymax), got {lim!r}")
    check_positive_int("n", n)
    # cell centres
    xs = lim[0] + (torch.arange(n, dtype=torch.float64) + 0.5) * (lim[1] - lim[0]) / n
    ys = lim[2] + (torch.arange(n, dtype=torch.float64) + 0.5) * (lim[3] - lim[2]) / n
    return xs, ys


def tilted_log_density(gmm: GaussianMixture, label: int, w: float, x: torch.Tensor) -> torch.Tensor:
    """Unnormalised log of p(x | y)^w p(x)^(1 - w) at x: (N, D)."""
    _check_labelled(gmm)
    w = check_real("w", w)
    gmm._check_x(x)
    return w * gmm.condition(label).log_prob(x) + (1 - w) * gmm.log_prob(x)


def tilted_density_grid(gmm: GaussianMixture, label: int, w: float, lim=5.0, n: int = 200):
    """The tilted density q_w(x) = p(x | y)^w p(x)^(1 - w) / Z of a 2D labelled mixture on an n x n
    grid of cell centres over lim (a number L: [-L, L]^2; or (xmin, xmax, ymin, ymax)), normalised
    numerically (sum q dA = 1). Returns (xs (n,), ys (n,), q (n, n)) with q[i, j] at (xs[j], ys[i])
    (matplotlib's contour/imshow layout)."""
    _check_labelled(gmm)
    if gmm.D != 2:
        raise ValueError(f"tilted_density_grid needs a 2D mixture, got D = {gmm.D}")
    xs, ys = _grid_axes(lim, n)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")                     # (n, n): X[i, j] = xs[j]
    logq = tilted_log_density(gmm, label, w, torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).reshape(n, n)
    dA = float((xs[1] - xs[0]) * (ys[1] - ys[0])) if n > 1 else 1.0
    q = torch.softmax(logq.reshape(-1), 0).reshape(n, n) / dA
    return xs, ys, q


def sample_from_grid(xs: torch.Tensor, ys: torch.Tensor, density: torch.Tensor, n: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, 2) float32 from a density on a grid of cell centres (as tilted_density_grid
    returns): pick cells with probability q dA, then a uniform point inside the cell."""
    check_positive_int("n", n)
    check_tensor("xs", xs, ndim=1)
    check_tensor("ys", ys, ndim=1)
    if len(xs) < 2 or len(ys) < 2:
        raise ValueError(f"xs and ys must hold at least 2 cell centres each, got {len(xs)} and {len(ys)}")
    check_tensor("density", density, finite=True)
    if bool((density < 0).any()) or not float(density.sum()) > 0:
        raise ValueError("density must be >= 0 everywhere with a positive sum")
    if density.shape != (len(ys), len(xs)):
        raise ValueError(f"density must have shape (len(ys), len(xs)) = ({len(ys)}, {len(xs)}), "
                         f"got {tuple(density.shape)}")
    p = density.reshape(-1).double().clamp_min(0)
    idx = torch.multinomial(p / p.sum(), n, replacement=True, generator=generator)
    i, j = idx // len(xs), idx % len(xs)
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
    return torch.stack([xs[j] + u[:, 0] * dx, ys[i] + u[:, 1] * dy], 1).float()


def _spread(x: torch.Tensor) -> float:
    """sqrt(trace Cov(x)): the size of a sample cloud."""
    return float(x.double().var(0).sum().sqrt())


def _within(x: torch.Tensor, part: GaussianMixture) -> float:
    """RMS distance of each sample to the mean of its most likely component of `part`."""
    k = part.responsibilities(x.double()).argmax(1)
    return float(((x.double() - part.means[k]) ** 2).sum(1).mean().sqrt())


def compare_cfg_with_tilted(gmm: GaussianMixture, label: int, ws=(0.0, 1.0, 2.0, 4.0), schedule=None,
                            n: int = 2000, steps: int = 100, sampler: str = "ddim", lim=6.0,
                            grid: int = 300, seed: int = 0, p: int = 1) -> list[dict]:
    """What does CFG with weight w sample? For each w: samples of the exact CFG denoiser (DDIM
    eta = 0 or DDPM) against samples of the tilted density q_w on a grid; distances are sliced
    Wasserstein-p (p = 1 by default: W2 is dominated by the sampling noise of the mode weights,
    mass moved between far-apart modes). Returns one dict per w:
    {'w', 'sw' (sliced Wasserstein CFG vs q_w), 'sw_floor' (q_w vs an independent q_w sample),
    'sw_cond' (CFG vs p(x | y)), 'spread_cfg', 'spread_tilted' (sqrt trace Cov), 'within_cfg',
    'within_tilted' (RMS distance to the nearest component mean of class y: sharpening),
    'mean_cfg', 'mean_tilted'}."""
    _check_labelled(gmm)
    check_choice("sampler", sampler, ("ddim", "ddpm"))
    schedule = linear_schedule(1000) if schedule is None else schedule
    part = gmm.condition(label)
    cond = part.sample(n, torch.Generator().manual_seed(seed + 1))
    rows = []
    for w in ws:
        gen = torch.Generator().manual_seed(seed)
        D = exact_cfg_denoiser(gmm, schedule, label, w)
        xT = torch.randn(n, gmm.D, generator=gen, dtype=torch.float64)
        x = (ddim(D, xT, schedule, steps) if sampler == "ddim" else ddpm(D, xT, schedule, steps, generator=gen)).float()
        xs, ys, q = tilted_density_grid(gmm, label, w, lim, grid)
        t1, t2 = sample_from_grid(xs, ys, q, n, gen), sample_from_grid(xs, ys, q, n, gen)
        sw = lambda a, b: sliced_wasserstein(a, b, p=p)
        rows.append({"w": float(w), "sw": sw(x, t1), "sw_floor": sw(t1, t2), "sw_cond": sw(x, cond),
                     "spread_cfg": _spread(x), "spread_tilted": _spread(t1),
                     "within_cfg": _within(x, part), "within_tilted": _within(t1, part),
                     "mean_cfg": x.double().mean(0).tolist(), "mean_tilted": t1.double().mean(0).tolist()})
    return rows
