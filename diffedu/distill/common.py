"""What every distillation method shares: the teacher at a continuous noise level, the student
network, the continuous cosine time of progressive distillation, and the scoring of samples.

Teachers. Distillation queries its teacher at noise levels no discrete schedule holds (the
half-steps t - 1/(2N) of progressive distillation, the Karras sigmas of consistency
distillation), so every method calls the teacher as

    teacher(x, alpha_bar, **cond) -> x0_hat        x: (B, D...); alpha_bar: (B,) in [0, 1]

`level_teacher` builds that view from
    a GaussianMixture          exact E[x0 | x_t] at every level, vectorised over rows (alpha_bar
                               = 0, SNR = 0, included: the answer is the data mean E[x0]);
    a Denoiser (the contract)  Denoiser.at_level, i.e. the ONE rule NoiseSchedule.locate, one
                               call per distinct level in the batch; a level outside the
                               schedule's range (alpha_bar = 0 among them) goes to its end entry.
    a labelled GaussianMixture with cond y (B,) class labels (-1 or None: unconditional).
Anything else is refused with a TypeError.

Student. `LevelMLP` is MLPDenoiser's residual MLP with a continuous level input (a real number
in [0, 1000], the method decides what it means: t of the cosine time, a log-sigma, ...) and,
for guidance distillation, a guidance weight input w.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_tensor
from ..denoiser import Denoiser
from ..exact.gmm import GaussianMixture
from ..nets.embeddings import timestep_embedding

__all__ = ["LevelMLP", "level_teacher", "gmm_x0", "cosine_alpha_sigma", "sw_to", "count_params"]


# -- the teacher at a continuous level -----------------------------------------------------
def gmm_x0(gmm: GaussianMixture, x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Exact E[x0 | x_t] of a mixture with a level per row. x: (B, D); alpha_bar: (B,) in [0, 1].
    C_k = a^2 Sigma_k + s^2 I, r_k ∝ pi_k N(x; a mu_k, C_k), x0 = sum_k r_k (mu_k + a Sigma_k C_k^-1 (x - a mu_k))."""
    xd = x.detach().to(torch.float64).cpu()
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64).cpu().reshape(-1).clamp(0, 1)
    a, s2 = ab.sqrt()[:, None, None, None], (1 - ab)[:, None, None, None]           # (B, 1, 1, 1)
    eye = torch.eye(gmm.D, dtype=torch.float64)
    C = a ** 2 * gmm.covs[None] + s2 * eye                                           # (B, K, D, D)
    diff = xd[:, None, :] - a[..., 0] * gmm.means[None]                              # (B, K, D)
    L = torch.linalg.cholesky(C)
    sol = torch.cholesky_solve(diff[..., None], L)[..., 0]                           # C^-1 (x - a mu)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)              # (B, K)
    logp = torch.log(gmm.weights)[None] - 0.5 * ((diff * sol).sum(-1) + logdet)
    r = torch.softmax(logp, 1)                                                       # (B, K)
    x0_k = gmm.means[None] + a[..., 0] * (gmm.covs[None] @ sol[..., None])[..., 0]   # (B, K, D)
    return (r[..., None] * x0_k).sum(1).to(x.dtype).to(x.device)


def level_teacher(teacher):
    """teacher(x, alpha_bar (B,), y=None) -> x0_hat from a GaussianMixture or a Denoiser (module doc)."""
    if isinstance(teacher, GaussianMixture):
        parts = {}

        def part(label):
            if label not in parts:
                parts[label] = teacher.condition(label)
            return parts[label]

        def gmm_teacher(x, alpha_bar, y=None):
            if y is None:
                return gmm_x0(teacher, x, alpha_bar)
            y = torch.as_tensor(y).reshape(-1).expand(len(x)).cpu()
            out = torch.empty_like(x)
            for c in torch.unique(y).tolist():
                rows = (y == c).nonzero()[:, 0]
                ab = torch.as_tensor(alpha_bar).reshape(-1).expand(len(x))[rows]
                out[rows.to(x.device)] = gmm_x0(teacher if c < 0 else part(c), x[rows.to(x.device)], ab)
            return out
        gmm_teacher.source = teacher
        return gmm_teacher
    if isinstance(teacher, Denoiser):
        if teacher.schedule is None:
            raise ValueError("the teacher denoiser has no schedule, so it has no continuous levels")

        def den_teacher(x, alpha_bar, y=None):
            ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1).expand(len(x)).cpu()
            out = torch.empty_like(x)
            for v in torch.unique(ab).tolist():
                rows = (ab == v).nonzero()[:, 0].to(x.device)
                c = None if y is None else torch.as_tensor(y, device=x.device).reshape(-1).expand(len(x))[rows]
                out[rows] = teacher.at_level(x[rows], max(min(v, 1.0), 1e-12), cond=c)[0]
            return out
        den_teacher.source = teacher
        return den_teacher
    if getattr(teacher, "source", None) is not None and callable(teacher):
        return teacher                                      # already a level teacher
    raise TypeError(f"teacher must be a diffedu Denoiser (e.g. dd.pretrained_denoiser(...)) or a "
                    f"GaussianMixture (its exact denoiser), got {type(teacher).__name__}")


# -- continuous cosine time (progressive and guidance distillation) -------------------------
def cosine_alpha_sigma(t: torch.Tensor):
    """alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2) for t in [0, 1] (Salimans & Ho 2022, the
    cosine schedule in continuous time). t = 1 is SNR = 0 exactly: alpha = 0, alpha_bar = 0."""
    t = torch.as_tensor(t, dtype=torch.float64)
    end = t >= 1                                  # cos(pi / 2) is 6e-17 in floating point: make SNR = 0 exact
    return torch.cos(0.5 * math.pi * t).masked_fill(end, 0.0), torch.sin(0.5 * math.pi * t).masked_fill(end, 1.0)


# -- the student network ---------------------------------------------------------------------
class LevelMLP(nn.Module):
    """model(x, level, y=None, w=None) -> prediction (B, D); x: (B, D), level: (B,) reals in
    [0, 1000]; y: (B,) labels in [0, num_classes] (num_classes = null); w: (B,) guidance weights
    (only with w_embed=True). The architecture of nets.MLPDenoiser: embeddings added to every
    residual block."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 64,
                 num_classes: int | None = None, w_embed: bool = False, prediction: str = "v"):
        super().__init__()
        self.dim, self.t_dim, self.num_classes, self.prediction = dim, t_dim, num_classes, prediction
        self.inp = nn.Linear(dim, hidden)
        self.t_proj = nn.Sequential(nn.Linear(t_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.w_proj = nn.Sequential(nn.Linear(t_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)) if w_embed else None
        self.y_embed = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, level, y=None, w=None, offsets=None) -> torch.Tensor:
        """offsets: optional list of (B, hidden) features added after the LAST len(offsets) residual
        blocks (the "decoder" half), where plug-and-play distillation's guide injects (plugplay.py)."""
        check_tensor("x", x, ndim=2)
        level = torch.as_tensor(level, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
        emb = self.t_proj(timestep_embedding(level, self.t_dim).to(x.dtype))
        if self.y_embed is not None:
            y = torch.full((len(x),), self.num_classes) if y is None else torch.as_tensor(y).reshape(-1).expand(len(x))
            emb = emb + self.y_embed(y.long().to(x.device))
        if self.w_proj is not None:
            if w is None:
                raise ValueError("this student is guidance-conditioned: pass w=...")
            w = torch.as_tensor(w, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
            emb = emb + self.w_proj(timestep_embedding(w * 250.0, self.t_dim).to(x.dtype))
        h = self.inp(x)
        first = len(self.hidden) - (0 if offsets is None else len(offsets))
        if first < 0:
            raise ValueError(f"offsets: at most {len(self.hidden)} (one per residual block), got {len(offsets)}")
        for k, layer in enumerate(self.hidden):
            h = h + layer(nn.functional.silu(h + emb))
            if k >= first:
                h = h + offsets[k - first]
        return self.out(nn.functional.silu(h))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- scoring -------------------------------------------------------------------------------
def sw_to(x: torch.Tensor, reference: torch.Tensor, n_proj: int = 512) -> float:
    """Sliced Wasserstein-2 between samples x (N, D) and reference samples (fixed projections)."""
    from ..metrics import sliced_wasserstein
    return sliced_wasserstein(x, reference, n_proj=n_proj, generator=torch.Generator().manual_seed(0))
