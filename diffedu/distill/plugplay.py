"""Plug-and-play diffusion distillation (Hsiao, Chang, Chang & Hsu, CVPR 2024; survey section 7.1).

Classifier-free guidance needs two passes of the model per step. Here the base model stays
FROZEN; a small *guide* network, trained beside it, adds its outputs to the base's decoder
features, so that one pass of base + guide gives what CFG gets from two passes of the base at
guidance weight w. Because the base's weights are untouched, the same guide plugs into other
models of the same architecture (a fine-tuned copy of the base) without retraining.

Notation (cosine time t in [0, 1] as progressive.py; diffedu's CFG scale: x_w = x_u + w (x_c - x_u),
w = 1 conditional, w = 0 unconditional):
    base(z, level, y) -> v              class-conditional LevelMLP, y = num_classes is the null label
    guide(z, level, y, w) -> offsets    one (B, hidden) offset per injected residual block: the LAST
                                        `n_inject` blocks of the base ("the decoder"); the guide's
                                        output layers start at zero, so base + guide = base at init
    x_hat_w^pnp = x0 of base(z, level, y, offsets=guide(z, level, y, w))        1 call
    x_w^cfg     = x_u + w (x_c - x_u) of the base itself                        2 calls
Loss (the paper's distillation objective, with guidance.py's truncated-SNR weight):
    L = E_{x, y, w ~ U[W_MIN, W_MAX], t} max(SNR_t, 1) || x_hat_w^pnp - x_w^cfg ||^2,   only the guide learns.

Where this differs from the paper: the base is a residual MLP on a 2D mixture, not Stable
Diffusion's U-Net with a ControlNet-like guide, and step distillation (the paper also distils to
few steps) is progressive.py's job, not repeated here. The teacher is the base itself, so no
exact answer is needed for training; the chapter still grades samples against the data.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .._validate import check_int, check_positive_int, check_real
from ..nets.embeddings import timestep_embedding
from ..train.fit import fit
from .common import LevelMLP, cosine_alpha_sigma, count_params
from .guidance import W_MAX, W_MIN
from .progressive import _col, student_x0

__all__ = ["GuideNet", "PnPGuided", "train_base", "finetune", "cfg_x0", "pnp_loss", "pnp_distill", "one_pass_mse",
           "param_share", "sample", "one_pass_sample", "cfg_sample"]


class GuideNet(nn.Module):
    """guide(x, level, y, w) -> list of n_inject offsets (B, base_hidden). x: (B, dim); level: (B,)
    in [0, 1000]; y: (B,) labels (num_classes = null); w: (B,) guidance weights. A small MLP with its
    own embeddings; the output heads are zero-initialised, so a fresh guide changes nothing."""

    def __init__(self, dim: int = 2, base_hidden: int = 128, n_inject: int = 2, hidden: int = 32, t_dim: int = 32,
                 num_classes: int = 3):
        super().__init__()
        self.t_dim, self.num_classes = t_dim, num_classes
        self.inp = nn.Linear(dim, hidden)
        self.emb = nn.Linear(2 * t_dim, hidden)                    # level and w, sinusoidal
        self.y_embed = nn.Embedding(num_classes + 1, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, base_hidden) for _ in range(n_inject))
        for head in self.heads:                                    # zero: base + guide == base at init
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x, level, y, w):
        level = torch.as_tensor(level, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
        w = torch.as_tensor(w, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
        y = torch.as_tensor(y, device=x.device).reshape(-1).expand(len(x)).long()
        e = torch.cat([timestep_embedding(level, self.t_dim), timestep_embedding(w * 250.0, self.t_dim)], 1).to(x.dtype)
        h = self.body(self.inp(x) + self.emb(e) + self.y_embed(y))
        return [head(h) for head in self.heads]


class PnPGuided(nn.Module):
    """One pass of a frozen base LevelMLP with a guide plugged in: model(x, level, y, w) -> v."""

    prediction = "v"

    def __init__(self, base: LevelMLP, guide: GuideNet):
        super().__init__()
        if not isinstance(base, LevelMLP) or base.y_embed is None:
            raise TypeError(f"base must be a class-conditional LevelMLP (num_classes set), got {type(base).__name__}")
        if not isinstance(guide, GuideNet) or len(guide.heads) > len(base.hidden):
            raise ValueError(f"guide must be a GuideNet injecting into at most {len(base.hidden)} blocks")
        self.base, self.guide = base.requires_grad_(False), guide

    def forward(self, x, level, y=None, w=None):
        if w is None:
            raise ValueError("w (the guidance weight) is required: the guide was trained for a range of w")
        y = torch.full((len(x),), self.base.num_classes) if y is None else y
        return self.base(x, level, y=y, offsets=self.guide(x, level, y, w))


def _labels(y, n, null):
    return torch.full((n,), null) if y is None else torch.as_tensor(y).reshape(-1).expand(n)


def train_base(gmm, steps: int = 3000, batch_size: int = 512, lr: float = 2e-3, p_uncond: float = 0.2,
               seed: int = 0, hidden: int = 128, depth: int = 3, data=None, base=None, progress: bool = False):
    """A class-conditional v-predicting LevelMLP trained on samples of the labelled mixture `gmm`
    (x-MSE with truncated-SNR weight in cosine time), its label dropped to the null class with
    probability p_uncond (the unconditional model of CFG). `base`: continue training that model
    instead (fine-tuning); `data`: draw the training samples from this mixture instead of gmm."""
    check_positive_int("steps", steps)
    p_uncond = check_real("p_uncond", p_uncond, lo=0, hi=1)
    data = gmm if data is None else data
    if getattr(data, "labels", None) is None:
        raise ValueError("train_base needs a labelled GaussianMixture (labels=(K,))")
    C = int(data.labels.max()) + 1
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    torch.manual_seed(seed)
    model = LevelMLP(dim=data.D, hidden=hidden, depth=depth, num_classes=C) if base is None \
        else copy.deepcopy(base).train().requires_grad_(True)

    def batch_loss():
        x, k = data.sample(batch_size, g, return_labels=True)
        x = x.float()
        y = data.labels[k].masked_fill(torch.rand(batch_size, generator=g) < p_uncond, C)
        t = torch.rand(batch_size, generator=g, dtype=torch.float64).clamp(1e-3, 1.0)
        a, s = cosine_alpha_sigma(t)
        z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=g)
        weight = _col(torch.clamp((a / s) ** 2, min=1.0), x)
        return (weight * (student_x0(model, z, t, y=y) - x) ** 2).sum(-1).mean()
    ema, losses = fit(model, batch_loss, steps, lr, ema=0.995, progress=progress, desc="base model")
    return ema.requires_grad_(False), losses


def finetune(base, data_gmm, steps: int = 600, lr: float = 5e-4, seed: int = 1, **kw):
    """A fine-tuned COPY of the base: train_base continued on another labelled mixture (the base is untouched)."""
    return train_base(data_gmm, steps=steps, lr=lr, seed=seed, data=data_gmm, base=base, **kw)


def cfg_x0(base, z, t, y, w):
    """Two-pass CFG of the base: x_u + w (x_c - x_u), z: (B, D), t: (B,) cosine time. 2 calls."""
    null = base.num_classes
    x_c = student_x0(base, z, t, y=_labels(y, len(z), null))
    x_u = student_x0(base, z, t, y=torch.full((len(z),), null))
    return x_u + _col(torch.as_tensor(w, dtype=torch.float64).reshape(-1).expand(len(z)), z) * (x_c - x_u)


def pnp_loss(guided: PnPGuided, x, y, w, generator=None):
    """The distillation loss of the module doc on a batch x: (B, D), labels y: (B,), weights w: (B,)."""
    t = torch.rand(len(x), generator=generator, dtype=torch.float64).clamp(1e-3, 1.0)
    a, s = cosine_alpha_sigma(t)
    z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=generator).to(x)
    with torch.no_grad():
        target = cfg_x0(guided.base, z, t, y, w)
    weight = _col(torch.clamp((a / s) ** 2, min=1.0), x)
    return (weight * (student_x0(guided, z, t, y=y, w=w) - target) ** 2).sum(-1).mean()


def pnp_distill(base, gmm, steps: int = 2000, batch_size: int = 512, lr: float = 2e-3, seed: int = 0,
                n_inject: int = 2, hidden: int = 32, w_range=(W_MIN, W_MAX), progress: bool = False):
    """Train a GuideNet beside the frozen `base` on samples of `gmm` with labels drawn uniformly and
    w ~ U[w_range]. Returns (guide, losses); guide.w_range is the trained range."""
    check_positive_int("steps", steps)
    if not isinstance(base, LevelMLP) or base.y_embed is None:
        raise TypeError(f"base must be a class-conditional LevelMLP, got {type(base).__name__}")
    C = base.num_classes
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    torch.manual_seed(seed)
    guide = GuideNet(dim=base.dim, base_hidden=base.inp.out_features, n_inject=n_inject, hidden=hidden, num_classes=C)
    guided = PnPGuided(base, guide)

    def batch_loss():
        x = gmm.sample(batch_size, g).float()
        y = torch.randint(0, C, (batch_size,), generator=g)
        w = w_range[0] + (w_range[1] - w_range[0]) * torch.rand(batch_size, generator=g)
        return pnp_loss(guided, x, y, w, g)
    trained, losses = fit(guided, batch_loss, steps, lr, ema=0.99, progress=progress, desc="plug-and-play guide")
    trained.guide.w_range = tuple(w_range)
    return trained.guide.requires_grad_(False), losses


@torch.no_grad()
def one_pass_mse(base, guide, gmm, ws, n: int = 2000, seed: int = 0) -> dict:
    """{w: (mse_guided, mse_plain)}: mean ||x0 - x_w^cfg||^2 of base + guide (one pass) and, for
    contrast, of the base's plain conditional pass, against the base's own two-pass CFG, at t ~ U[0, 1]
    on labelled samples of gmm. guide=None gives only the plain pass (mse_guided = NaN)."""
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    out = {}
    for w in ws:
        x, k = gmm.sample(n, g, return_labels=True)
        x, y = x.float(), gmm.labels[k]
        t = torch.rand(n, generator=g, dtype=torch.float64).clamp(1e-3, 1.0)
        a, s = cosine_alpha_sigma(t)
        z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=g)
        target = cfg_x0(base, z, t, y, float(w))
        plain = float(((student_x0(base, z, t, y=y) - target) ** 2).sum(1).mean())
        guided = float("nan") if guide is None else \
            float(((student_x0(PnPGuided(base, guide), z, t, y=y, w=torch.full((n,), float(w))) - target) ** 2).sum(1).mean())
        out[float(w)] = (guided, plain)
    return out


def param_share(guide: GuideNet, base: LevelMLP) -> float:
    """The guide's parameters as a share of the base's."""
    return count_params(guide) / count_params(base)



@torch.no_grad()
def sample(x0_fn, z, N: int):
    """N DDIM steps from SNR = 0 (z: (B, D) pure noise) with x0_fn(z, t (B,)) -> x0_hat."""
    from .progressive import ddim_move
    N = check_positive_int("N (steps)", N)
    for i in range(N, 0, -1):
        t = torch.full((len(z),), i / N, dtype=torch.float64)
        z = ddim_move(z, x0_fn(z, t), t, t - 1.0 / N)
    return z


def one_pass_sample(base, guide, z, N: int, y, w):
    """Guided samples with ONE network call per step (base + guide): N calls."""
    model = PnPGuided(base, guide)
    y, w = _labels(y, len(z), base.num_classes), torch.full((len(z),), float(w))
    return sample(lambda zz, t: student_x0(model, zz, t, y=y, w=w), z, N)


def cfg_sample(base, z, N: int, y, w):
    """Two-pass CFG samples of the base: 2N network calls."""
    y = _labels(y, len(z), base.num_classes)
    return sample(lambda zz, t: cfg_x0(base, zz, t, y, float(w)), z, N)
