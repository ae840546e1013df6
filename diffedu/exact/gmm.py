"""Exact Gaussian mixtures: the one data distribution whose noisy scores, denoisers and
posteriors are all in closed form, so every learned or approximate quantity can be graded.

Notation: p(x_0) = sum_k pi_k N(x_0; mu_k, Sigma_k), x_t = a x_0 + s eps (a^2 = alpha_bar,
s^2 = 1 - alpha_bar). Then
    p_t(x_t) = sum_k pi_k N(x_t; a mu_k, C_k),          C_k = a^2 Sigma_k + s^2 I
    E[x_0 | x_t] = sum_k r_k(x_t) (mu_k + a Sigma_k C_k^{-1} (x_t - a mu_k)),
    r_k(x_t) = pi_k N(x_t; a mu_k, C_k) / p_t(x_t)    (responsibilities)
and, for y = A x_0 + sigma_y n, the posterior p(x_0 | y) is again a mixture (see `posterior`).
All computation is in float64; results come back in the input's dtype.
"""
from __future__ import annotations

import math
import numbers

import torch

from .._validate import check_index, check_int, check_real, check_schedule, check_tensor
from ..denoiser import Denoiser, t_batch


def _as_float64(name: str, v) -> torch.Tensor:
    """A number, sequence or tensor as float64, with a TypeError naming `name` otherwise."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, torch.Tensor, list, tuple)):
        raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {type(v).__name__}")
    try:
        return torch.as_tensor(v, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {v!r}") from err


class GaussianMixture:
    """weights: (K,) (normalised here); means: (K, D); covs: (K, D, D) full, (K, D) diagonal,
    or a float (isotropic, the same for every component). labels: optional (K,) class of each
    component (for class-conditional mixtures, see `condition`)."""

    def __init__(self, weights, means, covs=1.0, labels=None):
        means = _as_float64("means", means)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        if not bool(torch.isfinite(means).all()):
            raise ValueError("means must be finite (no NaN or inf)")
        K, D = means.shape
        weights = _as_float64("weights", weights)
        # NaN fails every comparison, so ask for what is allowed rather than refuse what is not
        if weights.shape != (K,) or not bool((weights >= 0).all()) or not float(weights.sum()) > 0 \
                or not bool(torch.isfinite(weights).all()):
            raise ValueError(f"weights must be {K} finite non-negative numbers with a positive sum, "
                             f"got {weights.tolist() if weights.numel() < 20 else tuple(weights.shape)}")
        covs = _as_float64("covs", covs)
        if not bool(torch.isfinite(covs).all()):
            raise ValueError("covs must be finite (no NaN or inf)")
        if covs.ndim == 0:
            covs = covs * torch.eye(D, dtype=torch.float64).expand(K, D, D)
        elif covs.shape == (K, D):
            covs = torch.diag_embed(covs)
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must be a float, (K, D) = ({K}, {D}) diagonals or (K, D, D) matrices; "
                             f"got shape {tuple(covs.shape)}")
        jitter = 1e-9 * (1 + covs.diagonal(dim1=1, dim2=2).abs().amax()) * torch.eye(D, dtype=torch.float64)
        if not torch.allclose(covs, covs.transpose(1, 2)) or (torch.linalg.cholesky_ex(covs + jitter).info > 0).any():
            raise ValueError("covs must be symmetric positive semi-definite")
        self.weights, self.means, self.covs = weights / weights.sum(), means, covs.contiguous()
        self.labels = None if labels is None else check_index("labels", labels).cpu()
        if self.labels is not None and self.labels.shape != (K,):
            raise ValueError(f"labels must have shape ({K},), got {tuple(self.labels.shape)}")

    K = property(lambda self: self.means.shape[0])
    D = property(lambda self: self.means.shape[1])

    def __repr__(self):
        return f"GaussianMixture(K={self.K}, D={self.D})"

    def _check_x(self, x, name: str = "x"):
        check_tensor(name, x, ndim=2)
        if x.shape[1] != self.D:
            raise ValueError(f"x must have shape (N, {self.D}), got {tuple(x.shape)}")
        return x.to(torch.float64).cpu()

    # -- the clean distribution ---------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """n samples (n, D) float32 (and their component indices (n,) with return_labels); n = 0
        gives an empty (0, D) tensor."""
        n = check_int("n", n, lo=0)
        if n == 0:
            x, k = torch.empty(0, self.D), torch.empty(0, dtype=torch.long)
            return (x, k) if return_labels else x
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        L = torch.linalg.cholesky(self.covs + 1e-12 * torch.eye(self.D, dtype=torch.float64))
        z = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        x = self.means[k].clone()
        for j in k.unique().tolist():              # one matrix product per component, not (n, D, D)
            rows = k == j
            x[rows] += z[rows] @ L[j].T
        x = x.float()
        return (x, k) if return_labels else x

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def cov(self) -> torch.Tensor:
        m = self.mean()
        d = self.means - m
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)

    def _component_logpdf(self, x):
        """log pi_k + log N(x; mu_k, Sigma_k) for x (N, D) float64: (N, K), and Sigma_k^{-1}(x - mu_k): (K, N, D)."""
        L = torch.linalg.cholesky(self.covs)                            # (K, D, D)
        diff = (x[None] - self.means[:, None]).transpose(1, 2)          # (K, D, N)
        z = torch.linalg.solve_triangular(L, diff, upper=False)         # L^{-1} (x - mu)
        maha = (z ** 2).sum(1)                                          # (K, N)
        logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)
        logp = torch.log(self.weights)[:, None] - 0.5 * (maha + logdet[:, None] + self.D * math.log(2 * math.pi))
        prec_diff = torch.cholesky_solve(diff, L).transpose(1, 2)       # (K, N, D)
        return logp.T, prec_diff

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x: (N, D); returns (N,)."""
        xd = self._check_x(x)
        return torch.logsumexp(self._component_logpdf(xd)[0], 1).to(x.dtype)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities p(k | x): (N, K)."""
        return torch.softmax(self._component_logpdf(self._check_x(x))[0], 1).to(x.dtype)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x) = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k); x: (N, D)."""
        logp, prec_diff = self._component_logpdf(self._check_x(x))
        r = torch.softmax(logp, 1)                                      # (N, K)
        return -(r.T[:, :, None] * prec_diff).sum(0).to(x.dtype).to(x.device)

    # -- the noisy marginals p_t and the exact denoiser ---------------------------------
    def noisy(self, alpha_bar: float) -> "GaussianMixture":
        """The law of x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps (a mixture again)."""
        ab = check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
        eye = torch.eye(self.D, dtype=torch.float64)
        return GaussianMixture(self.weights, ab ** 0.5 * self.means, ab * self.covs + (1 - ab) * eye, self.labels)

    def score_t(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """Exact noisy score grad log p_t(x_t); x: (N, D)."""
        return self.noisy(alpha_bar).score(x)

    def denoiser(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """Exact E[x_0 | x_t = x] at noise level alpha_bar (float); x: (N, D) -> (N, D)."""
        xd, ab = self._check_x(x), check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
        pt = self.noisy(ab)
        logp, prec_diff = pt._component_logpdf(xd)                      # prec_diff = C_k^{-1}(x - a mu_k)
        r = torch.softmax(logp, 1)                                      # (N, K)
        x0_k = self.means[:, None] + ab ** 0.5 * prec_diff @ self.covs  # (K, N, D); Sigma symmetric
        return (r.T[:, :, None] * x0_k).sum(0).to(x.dtype).to(x.device)

    def as_denoiser(self, schedule) -> "GMMDenoiser":
        """The exact denoiser D(x_t, t) for the original timesteps t of `schedule` (the
        diffedu.denoiser contract), exact at every continuous level too."""
        return GMMDenoiser(self, schedule)

    # -- conditioning --------------------------------------------------------------------
    def condition(self, label: int) -> "GaussianMixture":
        """The mixture of the components with class `label` (p(x | c) for a labelled mixture)."""
        if self.labels is None:
            raise ValueError("this mixture has no labels; pass labels=(K,) when constructing it")
        label = check_int("label", label)
        keep = self.labels == label
        if not keep.any():
            raise ValueError(f"no component has label {label}; labels are {sorted(set(self.labels.tolist()))}")
        return GaussianMixture(self.weights[keep], self.means[keep], self.covs[keep], self.labels[keep])

    def posterior(self, A, y, sigma_y: float) -> "GaussianMixture":
        """Exact p(x_0 | y) for y = A x_0 + sigma_y n: A (m, D), y (m,), sigma_y > 0. Component k:
            S_k = A Sigma_k A^T + sigma_y^2 I,  G_k = Sigma_k A^T S_k^{-1}
            mean mu_k + G_k (y - A mu_k),  covariance Sigma_k - G_k A Sigma_k,
            weight proportional to pi_k N(y; A mu_k, S_k)."""
        A = _as_float64("A", A)
        y = _as_float64("y", y).reshape(-1)
        sigma_y = check_real("sigma_y", sigma_y)
        if not (bool(torch.isfinite(A).all()) and bool(torch.isfinite(y).all())):
            raise ValueError("A and y must be finite (no NaN or inf)")
        if A.ndim != 2 or A.shape[1] != self.D:
            raise ValueError(f"A must have shape (m, {self.D}), got {tuple(A.shape)}")
        if y.shape != (A.shape[0],):
            raise ValueError(f"y must have {A.shape[0]} entries (the rows of A), got {tuple(y.shape)}")
        if sigma_y <= 0:
            raise ValueError(f"sigma_y must be > 0, got {sigma_y}")
        m = A.shape[0]
        SAt = self.covs @ A.T                                           # (K, D, m)
        S = A @ SAt + sigma_y ** 2 * torch.eye(m, dtype=torch.float64)  # (K, m, m)
        L = torch.linalg.cholesky(S)
        G = torch.cholesky_solve(SAt.transpose(1, 2), L).transpose(1, 2)  # (K, D, m)
        resid = y - self.means @ A.T                                    # (K, m)
        means = self.means + (G @ resid[:, :, None])[..., 0]
        covs = self.covs - G @ SAt.transpose(1, 2)
        covs = 0.5 * (covs + covs.transpose(1, 2))
        z = torch.linalg.solve_triangular(L, resid[:, :, None], upper=False)[..., 0]
        logw = torch.log(self.weights) - 0.5 * (z ** 2).sum(1) - torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)
        return GaussianMixture(torch.softmax(logw, 0), means, covs, self.labels)


class GMMDenoiser(Denoiser):
    """The exact E[x_0 | x_t] of a Gaussian mixture as a denoiser (diffedu.denoiser contract):
    x0_eps(x_t (B, D), t) at the schedule's timesteps (rows may have different t), and
    `at_level` exact at any alpha_bar (no interpolation between entries)."""

    def __init__(self, gmm: GaussianMixture, schedule):
        if not isinstance(gmm, GaussianMixture):
            raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
        self.gmm, self.schedule = gmm, check_schedule(schedule)

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        t = t_batch(t, x)
        if alpha_bar is not None and not isinstance(alpha_bar, torch.Tensor):
            return self.at_level(x, float(alpha_bar))
        x0 = torch.empty_like(x)
        for tv in torch.unique(t):
            rows = (t == tv).nonzero()[:, 0]
            x0[rows] = self.gmm.denoiser(x[rows], float(self.schedule.alpha_bar_of(tv)))
        ab = self.schedule.alpha_bar_of(t, x)
        return x0, (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    def at_level(self, x: torch.Tensor, alpha_bar: float, cond=None, interpolate: bool = True):
        ab = check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
        if ab == 1:
            raise ValueError("alpha_bar must be < 1 (eps is undefined at the noise-free level)")
        x0 = self.gmm.denoiser(x, ab)
        return x0, (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
