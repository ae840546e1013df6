"""Low-rank and sparse structure (chapter 14, survey section 8.2).

The data here are real vectors with Gaussian noise, so the denoiser contract holds in full:
`LowRankDenoiser` is a `Denoiser` (x0_eps, at_level exact), like the Gaussian mixture's.

Mixture of low-rank Gaussians (MoLRG; Wang et al. 2024, "Diffusion models learn low-dimensional
distributions via subspace clustering"). Notation:
    x_0 = U_k a,  k ~ pi,  a ~ N(0, s^2 I_d),  U_k: (D, d) orthonormal columns (K subspaces of dim d in R^D)
    x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps,  ab = alpha_bar
The exact denoiser, in three steps:
    1. soft assignment  r_k(x_t) = pi_k N(x_t; 0, C_k) / sum_j (...),  C_k = ab s^2 U_k U_k^T + (1 - ab) I, so
       log r_k = log pi_k + |U_k^T x_t|^2 / 2 (1 / (1 - ab) - 1 / (ab s^2 + 1 - ab)) + const  (same d for every k)
    2. projection       U_k U_k^T x_t (the part of x_t in subspace k; the rest is pure noise)
    3. shrinkage        c = sqrt(ab) s^2 / (ab s^2 + 1 - ab)   (Wiener factor inside the subspace)
    E[x_0 | x_t] = sum_k r_k(x_t) c U_k U_k^T x_t        (Wang et al. 2024, Lemma 1)
Its Jacobian is c U_k U_k^T where one r_k dominates: rank d, the intrinsic dimension.

Sparsity (the scalar denoiser y = x + sigma n -> E[x | y], applied per coordinate):
    Bernoulli-Gauss x ~ (1 - rho) delta_0 + rho N(0, s^2):  E[x | y] = P(on | y) s^2 / (s^2 + sigma^2) y
    Laplace p(x) = (lam / 2) exp(-lam |x|): E[x | y] = y + sigma^2 lam tanh((log A - log B) / 2),
        A = e^{lam y} Phi(-y / sigma - lam sigma), B = e^{-lam y} Phi(y / sigma - lam sigma)  (Tweedie on p_y)
    soft thresholding S_tau(y) = sign(y) max(|y| - tau, 0) is the MAP of the Laplace prior (tau = lam sigma^2),
    and the MMSE denoiser tends to y - sign(y) lam sigma^2 for large |y|: both shrink; only the MAP is exactly 0.

Memorisation to generalisation: `transition_sweep` trains the chapter-03 MLP on n points of a MoLRG and grades
its samples (share of novel samples, subspace angle, off-support residual) beside the ideal denoiser of the same
n points (exact/memorisation.py); `python -m diffedu.domains.lowrank` writes the shipped sweep.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_positive_int, check_real, check_schedule, check_tensor
from ..denoiser import Denoiser, t_batch

__all__ = ["random_subspaces", "LowRankMixture", "LowRankDenoiser", "mc_denoiser", "subspace_angle",
           "recovery_angle", "off_support", "jacobian_singular_values", "effective_rank",
           "bernoulli_gauss_denoiser", "laplace_denoiser", "soft_threshold", "transition_sweep", "SWEEP",
           "sweep_mixture"]


def random_subspaces(K: int, D: int, d: int, generator=None) -> torch.Tensor:
    """K random d-dimensional subspaces of R^D as orthonormal bases: (K, D, d) float64."""
    K, D, d = (check_positive_int(n, v) for n, v in (("K", K), ("D", D), ("d", d)))
    if d > D:
        raise ValueError(f"d (the intrinsic dimension) must be <= D={D}, got {d}")
    return torch.linalg.qr(torch.randn(K, D, d, generator=generator, dtype=torch.float64))[0]


class LowRankMixture:
    """MoLRG: bases (K, D, d) with orthonormal columns, weights (K,) (normalised; default equal), scale s."""

    def __init__(self, bases: torch.Tensor, weights=None, scale: float = 1.0):
        U = check_tensor("bases", torch.as_tensor(bases, dtype=torch.float64), ndim=3, finite=True)
        K, D, d = U.shape
        eye = torch.eye(d, dtype=torch.float64).expand(K, d, d)
        if not torch.allclose(U.transpose(1, 2) @ U, eye, atol=1e-8):
            raise ValueError("bases must have orthonormal columns (U_k^T U_k = I); orthonormalise with torch.linalg.qr")
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (K,) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"weights must be {K} non-negative numbers with a positive sum, got {w.tolist()}")
        self.U, self.weights, self.scale = U, w / w.sum(), check_real("scale", scale, lo=0, lo_open=True)
        self.K, self.D, self.d = K, D, d

    def sample(self, n: int, generator=None, return_labels: bool = False):
        """n points (n, D) float64 (and their components (n,) with return_labels)."""
        n = check_positive_int("n", n)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        a = self.scale * torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        x = (self.U[k] @ a[..., None])[..., 0]
        return (x, k) if return_labels else x

    def _check_x(self, x):
        check_tensor("x", x, ndim=2)
        if x.shape[1] != self.D:
            raise ValueError(f"x must have shape (B, {self.D}), got {tuple(x.shape)}")
        return x.double()

    def responsibilities(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """Step 1, the soft assignment r_k(x_t): (B, K), for x: (B, D) at level alpha_bar in (0, 1)."""
        ab = check_real("alpha_bar", alpha_bar, lo=0, hi=1)
        if not 0 < ab < 1:
            raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {ab}")
        proj2 = (torch.einsum("kDd,bD->bkd", self.U, self._check_x(x)) ** 2).sum(-1)          # |U_k^T x|^2: (B, K)
        gain = 1 / (1 - ab) - 1 / (ab * self.scale ** 2 + 1 - ab)
        return torch.softmax(self.weights.log() + 0.5 * gain * proj2, dim=1)

    def denoise(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[x_0 | x_t = x]: (B, D) in x's dtype (steps 1-3 of the module doc)."""
        xd, ab = self._check_x(x), float(alpha_bar)
        r = self.responsibilities(xd, ab)                                                # 1. (B, K)
        proj = torch.einsum("kDd,kEd,bE->bkD", self.U, self.U, xd)                       # 2. U_k U_k^T x: (B, K, D)
        c = math.sqrt(ab) * self.scale ** 2 / (ab * self.scale ** 2 + 1 - ab)           # 3. shrinkage
        return (c * (r[..., None] * proj).sum(1)).to(x.dtype)

    def as_denoiser(self, schedule) -> "LowRankDenoiser":
        return LowRankDenoiser(self, schedule)


class LowRankDenoiser(Denoiser):
    """The exact MoLRG denoiser under the contract: x0_eps(x (B, D), t) at the schedule's timesteps."""

    def __init__(self, mix: LowRankMixture, schedule):
        if not isinstance(mix, LowRankMixture):
            raise TypeError(f"mix must be a LowRankMixture, got {type(mix).__name__}")
        self.mix, self.schedule = mix, check_schedule(schedule)

    def x0_eps(self, x, t, cond=None, alpha_bar=None):
        if alpha_bar is None or isinstance(alpha_bar, torch.Tensor):
            ab = self.schedule.alpha_bar_of(t_batch(t, x), x).reshape(-1)
            levels = [float(a) for a in ab]
        else:
            levels = [float(alpha_bar)] * len(x)
        x0 = torch.cat([self.mix.denoise(x[i:i + 1], a) for i, a in enumerate(levels)]) if len(set(levels)) > 1 \
            else self.mix.denoise(x, levels[0])
        ab = torch.tensor(levels, dtype=x.dtype).reshape(-1, 1)
        return x0, (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    def at_level(self, x, alpha_bar, cond=None, interpolate: bool = True):
        return self.x0_eps(x, 0, alpha_bar=check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1))


def mc_denoiser(mix: LowRankMixture, x: torch.Tensor, alpha_bar: float, n: int = 200_000, generator=None) -> torch.Tensor:
    """Monte Carlo E[x_0 | x_t = x] by self-normalised importance sampling from the prior:
    sum_i w_i x0_i, w_i propto N(x; sqrt(ab) x0_i, (1 - ab) I), x0_i ~ p: (B, D). Independent of steps 1-3."""
    ab = check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
    x0 = mix.sample(check_positive_int("n", n), generator)                                     # (n, D)
    logw = -torch.cdist(mix._check_x(x), math.sqrt(ab) * x0) ** 2 / (2 * (1 - ab))             # (B, n)
    return torch.softmax(logw, dim=1) @ x0


def subspace_angle(U: torch.Tensor, V: torch.Tensor) -> float:
    """The largest principal angle (degrees) between span(U) and span(V), U: (D, d), V: (D, d')
    orthonormal columns, d <= d': 0 when span(U) lies inside span(V), 90 when a direction is orthogonal."""
    s = torch.linalg.svdvals(U.T.double() @ V.double())
    return float(torch.rad2deg(torch.arccos(s.min().clamp(max=1.0))))


def recovery_angle(x: torch.Tensor, bases: torch.Tensor) -> float:
    """Subspace recovery from samples x: (N, D): assign each to the true subspace holding most of its
    energy, fit the top-d principal directions of each group (no centring: the components have mean 0)
    and return the worst principal angle to the true bases (K, D, d), in degrees (90 for an empty group)."""
    x, U = x.double(), bases.double()
    k = (torch.einsum("kDd,bD->bkd", U, x) ** 2).sum(-1).argmax(1)
    worst = 0.0
    for j in range(len(U)):
        xs = x[k == j]
        if len(xs) < U.shape[2]:
            return 90.0
        Vh = torch.linalg.svd(xs, full_matrices=False)[2][: U.shape[2]]
        worst = max(worst, subspace_angle(U[j], Vh.T))
    return worst


def off_support(x: torch.Tensor, bases: torch.Tensor) -> float:
    """Median over samples x: (N, D) of min_k |(I - U_k U_k^T) x| / |x|: 0 when every sample lies on the union."""
    x, U = x.double(), bases.double()
    res = x[:, None, :] - torch.einsum("kDd,kEd,bE->bkD", U, U, x)
    return float((res.norm(dim=-1).min(1).values / x.norm(dim=1).clamp_min(1e-12)).median())


def jacobian_singular_values(fn, x: torch.Tensor) -> torch.Tensor:
    """Singular values of the Jacobian d fn(x_i) / d x_i at each row of x: (B, D) (fn maps (B, D) -> (B, D)
    row by row): (B, D), descending."""
    check_tensor("x", x, ndim=2)
    J = torch.stack([torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], xi) for xi in x])
    return torch.linalg.svdvals(J.double())


def effective_rank(sv: torch.Tensor, rel: float = 0.1) -> torch.Tensor:
    """Number of singular values sv: (B, D) above rel x the largest of each row: (B,) long."""
    rel = check_real("rel", rel, lo=0, lo_open=True, hi=1)
    return (sv > rel * sv[:, :1]).sum(1)


# ---- sparsity: scalar shrinkage denoisers ------------------------------------------------------------

def _normal_logpdf(y, var):
    return -0.5 * (y ** 2 / var + math.log(2 * math.pi * var))


def bernoulli_gauss_denoiser(y: torch.Tensor, sigma: float, rho: float, s: float = 1.0) -> torch.Tensor:
    """E[x | y] for x ~ (1 - rho) delta_0 + rho N(0, s^2), y = x + sigma n: same shape as y (module doc)."""
    check_tensor("y", y)
    sigma, s = check_real("sigma", sigma, lo=0, lo_open=True), check_real("s", s, lo=0, lo_open=True)
    rho = check_real("rho", rho, lo=0, lo_open=True, hi=1)
    yd = y.double()
    on = math.log(rho) + _normal_logpdf(yd, s ** 2 + sigma ** 2)
    off = math.log1p(-rho) + _normal_logpdf(yd, sigma ** 2) if rho < 1 else torch.full_like(yd, -math.inf)
    p_on = torch.sigmoid(on - off)                                   # P(on | y)
    return (p_on * s ** 2 / (s ** 2 + sigma ** 2) * yd).to(y.dtype)


def laplace_denoiser(y: torch.Tensor, sigma: float, lam: float) -> torch.Tensor:
    """E[x | y] for p(x) = (lam / 2) exp(-lam |x|), y = x + sigma n: same shape as y (module doc)."""
    check_tensor("y", y)
    sigma, lam = check_real("sigma", sigma, lo=0, lo_open=True), check_real("lam", lam, lo=0, lo_open=True)
    yd = y.double()
    log_a = lam * yd + torch.special.log_ndtr(-yd / sigma - lam * sigma)
    log_b = -lam * yd + torch.special.log_ndtr(yd / sigma - lam * sigma)
    return (yd + sigma ** 2 * lam * torch.tanh((log_a - log_b) / 2)).to(y.dtype)


def soft_threshold(y: torch.Tensor, tau: float) -> torch.Tensor:
    """S_tau(y) = sign(y) max(|y| - tau, 0), the MAP denoiser of a Laplace prior (tau = lam sigma^2)."""
    check_tensor("y", y)
    tau = check_real("tau", tau, lo=0)
    return torch.sign(y) * (y.abs() - tau).clamp_min(0)




# ---- memorisation to generalisation (Wang et al. 2024, section 4) --------------------------------------

def transition_sweep(mix: LowRankMixture, sizes, seeds=(0, 1), steps: int = 2000, hidden: int = 128,
                     n_samples: int = 400, sample_steps: int = 50, T: int = 1000, keep_models: bool = False) -> list[dict]:
    """For each training-set size n in `sizes` and each seed: draw n points of `mix`, train the chapter-03
    MLP (x0-prediction, `steps` steps, linear schedule of T steps) on them and draw n_samples DDIM samples;
    the ideal (empirical, memorising) denoiser of the same n points (exact/memorisation.py) from the same
    x_T. Returns one row per (n, seed, who in ("network", "ideal")) with 'novel' (1 - copies: the share of
    samples farther than 0.1 x the typical spacing from every training point), 'ratio' (nn-distance ratio),
    'angle' (recovery_angle, degrees), 'off' (off_support) and the samples 'x' (n_samples, D) and 'train'."""
    from ..exact.memorisation import EmpiricalDenoiser, copying
    from ..nets.mlp import MLPDenoiser
    from ..samplers import ddim
    from ..schedules import linear_schedule
    from ..train.loss import train_denoiser
    from ..denoiser import to_denoiser
    sched = linear_schedule(check_positive_int("T", T))
    new = mix.sample(2000, torch.Generator().manual_seed(10 ** 6)).float()
    rows = []
    for n in sizes:
        for seed in seeds:
            train = mix.sample(check_positive_int("n", n), torch.Generator().manual_seed(1000 * seed + n)).float()
            x_T = torch.randn(n_samples, mix.D, generator=torch.Generator().manual_seed(seed + 7))
            net, _ = train_denoiser(MLPDenoiser(dim=mix.D, hidden=hidden, prediction="x0"), train, sched,
                                    steps=steps, seed=seed, progress=False)
            with torch.no_grad():
                points = {"network": ddim(to_denoiser(net, sched), x_T, sched, sample_steps),
                          "ideal": ddim(EmpiricalDenoiser(train, sched), x_T, sched, sample_steps)}
            for who, x in points.items():
                c = copying(x, train, new)
                rows.append({"n": n, "seed": seed, "who": who, "novel": 1 - c["copies"], "ratio": c["ratio"],
                             "angle": recovery_angle(x, mix.U), "off": off_support(x, mix.U), "x": x, "train": train,
                             **({"model": net} if keep_models and who == "network" else {})})
    return rows


# ---- the shipped sweep (diffedu/checkpoints/domains/lowrank_sweep.json) ---------------------------------

SWEEP = dict(K=1, D=8, d=2, sizes=(2, 4, 8, 16, 64), seeds=(0,), steps=2000, hidden=128, n_samples=400)


def sweep_mixture(K: int = SWEEP["K"], D: int = SWEEP["D"], d: int = SWEEP["d"]) -> LowRankMixture:
    """The chapter's MoLRG: K random d-dimensional subspaces of R^D (seed 0), scale 1."""
    return LowRankMixture(random_subspaces(K, D, d, torch.Generator().manual_seed(0)))


def main(argv=None) -> None:
    """python -m diffedu.domains.lowrank: run the SWEEP, write lowrank_sweep.json (numbers and the samples
    in the first subspace's coordinates) and the largest-n network as lowrank_mlp.safetensors."""
    import json
    import time
    from ..train.checkpoints import CHECKPOINTS, model_spec, save_checkpoint
    torch.set_num_threads(1)
    start, mix = time.process_time(), sweep_mixture()
    rows = transition_sweep(mix, SWEEP["sizes"], SWEEP["seeds"], SWEEP["steps"], SWEEP["hidden"], SWEEP["n_samples"],
                            keep_models=True)
    out = {"settings": dict(SWEEP, sizes=list(SWEEP["sizes"]), seeds=list(SWEEP["seeds"])),
           "command": "python -m diffedu.domains.lowrank", "rows": []}
    for r in rows:
        coords = lambda x: (x.double() @ mix.U[0]).round(decimals=4).tolist()      # noqa: E731
        out["rows"].append({k: r[k] for k in ("n", "seed", "who", "novel", "ratio", "angle", "off")}
                           | {"x": coords(r["x"][:200]), "train": coords(r["train"])})
    out["cpu_seconds"] = round(time.process_time() - start, 1)
    path = CHECKPOINTS / "domains" / "lowrank_sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out) + "\n")
    big = [r for r in rows if r["who"] == "network" and r["n"] == max(SWEEP["sizes"])][0]
    kw = dict(dim=SWEEP["D"], hidden=SWEEP["hidden"], prediction="x0")
    save_checkpoint(big["model"], CHECKPOINTS / "domains" / "lowrank_mlp.safetensors",
                    {"model": model_spec(big["model"], **kw), "command": "python -m diffedu.domains.lowrank",
                     "data": f"{max(SWEEP['sizes'])} points of sweep_mixture() (K=1, D=8, d=2), seed 64",
                     "schedule": {"name": "linear", "T": 1000}, "seed": 0, "steps": SWEEP["steps"],
                     "quality": {k: big[k] for k in ("novel", "angle", "off")}})
    print(path, out["cpu_seconds"], "CPU s")


if __name__ == "__main__":
    main()
