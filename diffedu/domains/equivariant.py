"""E(n)-equivariant diffusion on small point clouds (Hoogeboom et al. 2022) with an EGNN (Satorras et al. 2021).

Scope: noisy regular polygons placed at random (rotation, translation, node order), the zero-centre-of-mass
subspace and its noise, the EGNN denoiser, a non-equivariant MLP of the same size as the foil, a sampler that
keeps every step in the subspace, and the statistics that grade samples (pairwise distances, against the data
and against the exact polygon).

The denoiser contract holds here, with one restriction. A cloud is x: (B, N, n) (B clouds of N points in R^n)
and the networks predict eps, so `dd.to_denoiser(net, schedule)` is an ordinary denoiser D(x_t, t) = x0_hat.
But the process lives in the subspace sum_i x_i = 0 (a translation has no density to learn: a Gaussian over all
of R^(N n) cannot be translation invariant and normalisable at once). So every noise draw must be projected
there: DDIM (eta = 0) stays in the subspace by itself, while ancestral sampling must use `sample_edm` below
(dd.ddpm would add full-space noise and drift the centre of mass by a random walk).

Notation (Hoogeboom et al. 2022, sections 3.1-3.2; Satorras et al. 2021, eqs. 3-6):
    x: (B, N, n)          N points in R^n per cloud; P x = x - mean_i x_i, the projection onto the subspace
    eps ~ N_x(0, I)       P z with z ~ N(0, I): a standard Gaussian on the (N - 1) n dimensional subspace
    x_t                   sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps          (x_0 centred)
    EGNN layer            m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, |x_i^0 - x_j^0|^2)
                          x_i <- x_i + 1/(N - 1) sum_j (x_i - x_j) / (|x_i - x_j| + 1) phi_x(m_ij)
                          h_i <- h_i + phi_h(h_i, sum_j m_ij)
    eps_hat               P(x^L - x^0): only differences of positions enter, so eps_hat(R x + b) = R eps_hat(x)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_int, check_positive_int, check_real, check_tensor

__all__ = ["random_rotation", "polygon_clouds", "remove_mean", "zero_mean_noise", "check_clouds", "edm_loss",
           "sample_edm", "pairwise_distances", "polygon_distances", "distance_w1", "shape_error",
           "equivariance_error", "EGNN", "PointMLP", "mlp_hidden_for", "CHECKPOINT_MODELS",
           "train_edm", "load_shipped", "main"]


# -- data -------------------------------------------------------------------------------------

def check_clouds(name: str, x) -> torch.Tensor:
    """x: (B, N, n) float, N >= 2 points per cloud, finite."""
    check_tensor(name, x, ndim=3, finite=True)
    if x.shape[1] < 2 or x.shape[2] < 1:
        raise ValueError(f"{name} must be point clouds of shape (B, N, n) with N >= 2 points, got {tuple(x.shape)}")
    return x


def random_rotation(n: int, dim: int, generator: torch.Generator | None = None, reflect: bool = False,
                    dtype=torch.float64) -> torch.Tensor:
    """n Haar-random rotations (n, dim, dim) of R^dim (QR of a Gaussian, with R's diagonal made positive);
    with reflect, elements of O(dim) with determinant -1 half of the time."""
    check_positive_int("n", n)
    check_positive_int("dim", dim)
    q, r = torch.linalg.qr(torch.randn(n, dim, dim, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    flip = torch.linalg.det(q) < 0                                # make every one a rotation first
    q[flip, :, 0] = -q[flip, :, 0]
    if reflect:
        q[::2, :, 0] = -q[::2, :, 0]
    return q.to(dtype)


def remove_mean(x: torch.Tensor) -> torch.Tensor:
    """P x = x - mean_i x_i: the projection of clouds x: (B, N, n) onto the zero-centre-of-mass subspace."""
    return x - x.mean(dim=1, keepdim=True)


def zero_mean_noise(shape, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """A standard Gaussian on the zero-centre-of-mass subspace, P z with z ~ N(0, I): (B, N, n). Its covariance
    is P = (I_N - 1 1^T / N) kron I_n (P is an orthogonal projection, so P I P^T = P)."""
    return remove_mean(torch.randn(*shape, generator=generator, dtype=dtype))


def polygon_clouds(n: int, n_nodes: int = 6, dim: int = 2, radius: float = 1.0, jitter: float = 0.05,
                   generator: torch.Generator | None = None, centred: bool = True, dtype=torch.float32) -> torch.Tensor:
    """n noisy regular polygons (n, n_nodes, dim): the vertices radius (cos 2 pi k / N, sin 2 pi k / N, 0...)
    plus N(0, jitter^2) per coordinate, rotated by a random rotation, listed in a random order, and translated
    by N(0, I) (then centred, unless centred=False)."""
    check_positive_int("n", n)
    n_nodes, dim = check_int("n_nodes", n_nodes, lo=3), check_int("dim", dim, lo=2)
    radius, jitter = check_real("radius", radius, lo=0, lo_open=True), check_real("jitter", jitter, lo=0)
    ang = 2 * math.pi * torch.arange(n_nodes, dtype=torch.float64) / n_nodes
    base = torch.zeros(n_nodes, dim, dtype=torch.float64)
    base[:, 0], base[:, 1] = radius * torch.cos(ang), radius * torch.sin(ang)
    x = base + jitter * torch.randn(n, n_nodes, dim, generator=generator, dtype=torch.float64)
    x = x @ random_rotation(n, dim, generator).transpose(1, 2)
    order = torch.argsort(torch.rand(n, n_nodes, generator=generator), dim=1)
    x = torch.gather(x, 1, order[..., None].expand(-1, -1, dim))
    x = x + torch.randn(n, 1, dim, generator=generator, dtype=torch.float64)
    return (remove_mean(x) if centred else x).to(dtype)


# -- diffusion in the subspace -----------------------------------------------------------------

def edm_loss(model: nn.Module, x0: torch.Tensor, schedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """Hoogeboom et al.'s simplified loss, |eps - eps_hat(x_t, t)|^2, for centred clouds x0: (B, N, n).
        1. t ~ U{0, ..., T - 1}; eps = P z (noise in the subspace)
        2. x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
        3. mean squared error per coordinate (the N n coordinates hold (N - 1) n degrees of freedom)"""
    t = torch.randint(len(schedule), (len(x0),), generator=generator)
    eps = zero_mean_noise(x0.shape, generator, x0.dtype)
    ab = schedule.alpha_bar[t].to(x0.dtype)[:, None, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return ((model(xt, schedule.timesteps[t]) - eps) ** 2).mean()


def sample_edm(denoiser, x_T: torch.Tensor, schedule, steps: int | None = None, generator: torch.Generator | None = None,
               return_trajectory: bool = False):
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) in the zero-centre-of-mass subspace: diffedu's one
    reverse loop and public ddpm_step, with each noise draw projected by P. x_T: (B, N, n), centred (zero_mean_noise).
    Returns x_0, or (x_0, xs (S + 1, B, N, n), x0_hats (S, B, N, n)) with return_trajectory."""
    from ..denoiser import as_denoiser
    from ..samplers import ddpm_step, reverse_loop
    check_clouds("x_T", x_T)
    if float(x_T.mean(1).abs().max()) > 1e-4 * max(1.0, float(x_T.abs().max())):
        raise ValueError(f"x_T must be centred (mean over the N points 0), its largest centre coordinate is "
                         f"{float(x_T.mean(1).abs().max()):.3g}; draw it with zero_mean_noise")
    D = as_denoiser(denoiser)

    def step(x, i, t, ab_t, ab_prev, z):
        with torch.no_grad():
            x0 = D(x, t)
        return ddpm_step(x, x0, ab_t, ab_prev, None if z is None else remove_mean(z)), x0, {}
    return reverse_loop(step, x_T, schedule, steps, generator=generator, return_trajectory=return_trajectory)


# -- statistics -------------------------------------------------------------------------------

def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """The N (N - 1) / 2 distances |x_i - x_j|, i < j, of each cloud x: (B, N, n), sorted: (B, N (N - 1) / 2)."""
    check_clouds("x", x)
    i, j = torch.triu_indices(x.shape[1], x.shape[1], 1)
    return (x[:, i] - x[:, j]).norm(dim=-1).sort(dim=1).values


def polygon_distances(n_nodes: int, radius: float = 1.0) -> torch.Tensor:
    """The exact sorted distances of a regular N-gon of circumradius r: |v_i - v_j| = 2 r sin(pi |i - j| / N)."""
    n_nodes = check_int("n_nodes", n_nodes, lo=3)
    i, j = torch.triu_indices(n_nodes, n_nodes, 1)
    return (2 * radius * torch.sin(math.pi * (j - i).double() / n_nodes)).sort().values


def distance_w1(x: torch.Tensor, y: torch.Tensor) -> float:
    """1-Wasserstein distance between the pooled pairwise distances of clouds x: (B, N, n) and y: (B', N, n)
    (exact in 1D: the mean gap between matched quantiles)."""
    dx, dy = pairwise_distances(x).reshape(-1).double().sort().values, pairwise_distances(y).reshape(-1).double().sort().values
    q = (torch.arange(4096, dtype=torch.float64) + 0.5) / 4096
    return float((dx[(q * len(dx)).long()] - dy[(q * len(dy)).long()]).abs().mean())


def shape_error(x: torch.Tensor, radius: float = 1.0) -> float:
    """Mean over clouds x: (B, N, n) of the RMS gap between the cloud's sorted distances and the exact regular
    N-gon's (`polygon_distances`): 0 for a perfect polygon of circumradius `radius`, whatever its pose."""
    d = pairwise_distances(x).double()
    return float(((d - polygon_distances(x.shape[1], radius)) ** 2).mean(1).sqrt().mean())


def equivariance_error(model: nn.Module, x: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None,
                       reflect: bool = True) -> float:
    """max |f(R x + b) - R f(x)| over clouds x: (B, N, n) for one random orthogonal R and translation b per cloud
    (reflections included when reflect), with f = model(., t) on x's dtype (use float64 to see rounding only)."""
    check_clouds("x", x)
    R = random_rotation(len(x), x.shape[2], generator, reflect=reflect, dtype=x.dtype)
    b = torch.randn(len(x), 1, x.shape[2], generator=generator, dtype=x.dtype)
    with torch.no_grad():
        lhs = model(x @ R.transpose(1, 2) + b, t)
        rhs = model(x, t) @ R.transpose(1, 2)
    return float((lhs - rhs).abs().max())


def mlp_hidden_for(n_params: int, n_nodes: int, dim: int, depth: int = 3, n_freq: int = 4) -> int:
    """The hidden width that gives PointMLP(n_nodes, dim, hidden, depth) the nearest parameter count to n_params."""
    d, f = n_nodes * dim, 1 + 2 * n_freq
    count = lambda h: (d + f + 1) * h + (depth - 1) * (h * h + h) + (h + 1) * d        # noqa: E731
    return min(range(1, 2048), key=lambda h: abs(count(h) - n_params))


def _time_features(t: torch.Tensor, t_scale: float, freqs: torch.Tensor, dtype) -> torch.Tensor:
    s = (t.to(dtype) / t_scale)[:, None]                      # the integer step as a fraction of T
    return torch.cat([s, torch.sin(s * freqs.to(dtype)), torch.cos(s * freqs.to(dtype))], -1)


# -- networks ---------------------------------------------------------------------------------

class EGNNLayer(nn.Module):
    """One E(n)-equivariant layer (Satorras et al. 2021, eqs. 3-6, with Hoogeboom et al.'s normalisation of
    x_i - x_j by |x_i - x_j| + 1). h: (B, N, H), x: (B, N, n), d0: (B, N, N, 1) -> (h, x)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.phi_e = nn.Sequential(nn.Linear(2 * hidden + 2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.phi_x = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False))
        self.phi_h = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h, x, d0):
        B, N, H = h.shape
        diff = x[:, :, None] - x[:, None]                               # (B, N, N, n): x_i - x_j
        d2 = (diff ** 2).sum(-1, keepdim=True)                          # (B, N, N, 1)
        pair = torch.cat([h[:, :, None].expand(B, N, N, H), h[:, None].expand(B, N, N, H), d2, d0], -1)
        off = 1 - torch.eye(N, dtype=h.dtype, device=h.device)[None, :, :, None]     # no self-edges
        m = self.phi_e(pair) * off                                      # (B, N, N, H): messages m_ij
        x = x + (diff / ((d2 + 1e-12).sqrt() + 1) * self.phi_x(m) * off).sum(2) / (N - 1)   # +1e-12: finite grad at i = j
        return h + self.phi_h(torch.cat([h, m.sum(2)], -1)), x


class EGNN(nn.Module):
    """eps_hat(x_t, t) for clouds x_t: (B, N, n) and integer steps t: (B,) of a T-step schedule -> (B, N, n), centred.
    Node features start as the time embedding (all points alike: the clouds carry no types), so the
    output depends on positions only through distances and differences: E(n)- and permutation-equivariant."""
    prediction = "eps"

    def __init__(self, hidden: int = 32, layers: int = 4, n_freq: int = 4, t_scale: int = 1000):
        super().__init__()
        self.t_scale, self.n_freq = check_positive_int("t_scale", t_scale), check_positive_int("n_freq", n_freq)
        self.embed = nn.Linear(1 + 2 * n_freq, check_positive_int("hidden", hidden))
        self.layers = nn.ModuleList(EGNNLayer(hidden) for _ in range(check_positive_int("layers", layers)))
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = remove_mean(x)
        d0 = ((x0[:, :, None] - x0[:, None]) ** 2).sum(-1, keepdim=True)
        h = self.embed(_time_features(t, self.t_scale, self.freqs, x.dtype))[:, None].expand(-1, x.shape[1], -1)
        xl = x0
        for layer in self.layers:
            h, xl = layer(h, xl, d0)
        return remove_mean(xl - x0)


class PointMLP(nn.Module):
    """The foil: an MLP on the flattened cloud, eps_hat(x_t, t) for x_t: (B, N, n) -> (B, N, n), centred (so it
    lives in the same subspace) but neither rotation- nor permutation-equivariant."""
    prediction = "eps"

    def __init__(self, n_nodes: int = 6, dim: int = 2, hidden: int = 128, depth: int = 3, n_freq: int = 4,
                 t_scale: int = 1000):
        super().__init__()
        self.shape = (check_positive_int("n_nodes", n_nodes), check_positive_int("dim", dim))
        self.t_scale, self.n_freq = check_positive_int("t_scale", t_scale), check_positive_int("n_freq", n_freq)
        layers, width = [], n_nodes * dim + 1 + 2 * n_freq
        for _ in range(check_positive_int("depth", depth)):
            layers += [nn.Linear(width, check_positive_int("hidden", hidden)), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, n_nodes * dim))
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x must be clouds of shape (B, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}")
        feats = torch.cat([x.reshape(len(x), -1), _time_features(t, self.t_scale, self.freqs, x.dtype)], -1)
        return remove_mean(self.net(feats).reshape(x.shape))


CHECKPOINT_MODELS = (EGNN, PointMLP)


def train_edm(kind: str = "egnn", steps: int = 3000, batch_size: int = 128, n_data: int = 20000, n_nodes: int = 6,
              hidden: int | None = None, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train an EGNN (kind "egnn", hidden 32 by default) or the PointMLP foil of the same parameter count
    ("mlp") on centred noisy polygons in 2D, with the linear schedule of T = 1000. Returns (EMA model, losses, schedule)."""
    from ..schedules import linear_schedule
    from ..train.fit import fit
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    schedule = linear_schedule(1000)     # the cosine one ends at alpha_bar 2e-9: its first respaced step amplifies errors 300x
    data = polygon_clouds(n_data, n_nodes, 2, generator=g)
    if kind == "egnn":
        model = EGNN(hidden or 32)
    elif kind == "mlp":
        n_params = sum(p.numel() for p in EGNN(32).parameters())
        model = PointMLP(n_nodes, 2, hidden or mlp_hidden_for(n_params, n_nodes, 2))
    else:
        raise ValueError(f"unknown kind {kind!r}; choose 'egnn' or 'mlp'")

    def batch_loss():
        return edm_loss(model, data[torch.randint(len(data), (batch_size,), generator=g)], schedule, g)
    ema, losses = fit(model, batch_loss, steps, lr=lr, ema=0.995, progress=progress, desc=kind)
    return ema, losses, schedule


# -- shipped checkpoints: `python -m diffedu.domains.equivariant --kind egnn|mlp` ---------------------

NAMES = {"egnn": "domains/egnn_polygons", "mlp": "domains/egnn_polygons_mlp"}


def load_shipped(kind: str = "egnn") -> nn.Module:
    """The shipped EGNN ("egnn") or its same-size MLP foil ("mlp"), trained on centred noisy hexagons, eval mode."""
    from ..train.checkpoints import pretrained
    if kind not in NAMES:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(NAMES)}")
    return pretrained(NAMES[kind])


def quality(model: nn.Module, n: int = 1000, steps: int = 100, seed: int = 1) -> dict:
    """Distance statistics of n samples (DDPM in the subspace, `steps` steps) against n fresh clouds and the exact hexagon."""
    from ..denoiser import to_denoiser
    from ..schedules import linear_schedule
    g, sch = torch.Generator().manual_seed(seed), linear_schedule(1000)
    ref, ref2 = polygon_clouds(n, generator=g), polygon_clouds(n, generator=g)
    x = sample_edm(to_denoiser(model, sch), zero_mean_noise((n, 6, 2), g), sch, steps, g)
    return {"distance_w1": distance_w1(x, ref), "distance_w1_floor": distance_w1(ref2, ref), "shape_error": shape_error(x),
            "shape_error_data": shape_error(ref), "n": n, "steps": steps}


def main(argv=None):
    import argparse
    import time
    from ..train.checkpoints import CHECKPOINTS, loss_curve, model_spec, save_checkpoint
    ap = argparse.ArgumentParser(prog="python -m diffedu.domains.equivariant", description="train and ship the chapter's EGNN or MLP")
    ap.add_argument("--kind", choices=sorted(NAMES), required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from . import equivariant as mod     # under `python -m` this file is __main__: use the package's classes
    t0 = time.process_time()
    model, losses, _ = mod.train_edm(args.kind, steps=args.steps, seed=args.seed)
    cpu = time.process_time() - t0
    kwargs = (dict(hidden=32, layers=4) if args.kind == "egnn"
              else dict(n_nodes=6, dim=2, hidden=model.net[0].out_features, depth=3))
    manifest = {"model": model_spec(model, **kwargs), "seed": args.seed, "steps": args.steps, "batch_size": 128,
                "command": f"python -m diffedu.domains.equivariant --kind {args.kind} --steps {args.steps} --seed {args.seed}",
                "data": "diffedu.domains.equivariant.polygon_clouds(20000, 6, 2): hexagons r = 1, jitter 0.05, centred",
                "schedule": "linear_schedule(1000)", "prediction": "eps",
                "losses": loss_curve(losses, 100),
                "final_loss": sum(losses[-100:]) / len(losses[-100:]), "train_cpu_s": round(cpu, 1),
                "params": sum(p.numel() for p in model.parameters()), "quality": mod.quality(model)}
    path = save_checkpoint(model, CHECKPOINTS / f"{NAMES[args.kind]}.safetensors", manifest)
    print(path, manifest["quality"], f"{cpu:.0f} CPU-s")


if __name__ == "__main__":
    main()
