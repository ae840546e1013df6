"""Discrete diffusion (chapter 14, survey section 8.1): D3PM and masked diffusion (MDLM).

Where the denoiser contract ends, and why. For tokens there is no Gaussian noise to add: the
forward process is a Markov chain of transition matrices, so there is no eps, no score, and no
VP level sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps. What survives is the idea: the posterior
mean of the one-hot vector, E[onehot(x_0) | z_t], IS the categorical posterior p(x_0 | z_t), and
every reverse step and loss below is built from it. So a *categorical denoiser* is

    D(z, alpha_bar) -> p: (B, L, K)     p[b, l, k] = p(x_0^l = k | z_t = z),  rows sum to 1
    z: (B, L) long tokens in 0..S-1;  alpha_bar: (B,) float64, the level as a keep-probability

The level is the keep-probability alpha_bar (as `Denoiser.at_level` takes one), not an integer t
of a `NoiseSchedule`: one denoiser then serves every number of steps T (needed for the many-step
limit), and the absorbing process ends at alpha_bar = 0, which NoiseSchedule refuses.

Notation (Austin et al. 2021, "D3PM"; Sahoo et al. 2024, "MDLM"):
    K            data tokens 0..K-1;  S states: S = K ("uniform") or K + 1 ("absorbing", the mask is token K)
    Q_t          (S, S), [Q_t]_ij = q(x_t = j | x_{t-1} = i), rows sum to 1 (D3PM section 3)
                 = (1 - beta_t) I + beta_t 1 m^T, m = stationary law: 1/K (uniform) or e_mask (absorbing)
    Qbar_t       Q_1 Q_2 ... Q_t = alpha_bar_t I + (1 - alpha_bar_t) 1 m^T,  alpha_bar_t = prod_{s<=t} (1 - beta_s)
    posterior    q(x_{t-1} | x_t, x_0) = (x_t Q_t^T) * (x_0 Qbar_{t-1}) / (x_0 Qbar_t x_t^T)     (D3PM eq. 3)
    x0-param     p(x_{t-1} | x_t) = sum_x0 q(x_{t-1} | x_t, x0) p(x0 | x_t): exact when p(x0 | x_t) is.
                 D3PM eq. 4 instead weighs by q(x_{t-1}, x_t | x0), i.e. also by q(x_t | x0); the two agree
                 for the absorbing process, not for the uniform one (`reverse_probs(paper_form=True)`).
    L_vb         L_T + sum_{t>=2} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) - log p(x_0|x_1)   (D3PM section 3)
    hybrid       L_vb + lambda E[-log p(x_0 | x_t)], lambda = 0.01 in D3PM (section 3.4)
    MDLM         absorbing, continuous t in [0, 1], alpha(t) = 1 - t; SUBS parameterisation: the mask never
                 predicted, unmasked tokens carried over. With T steps s = t - 1/T the D3PM term L_{t-1} is
                 (alpha_s - alpha_t) / (1 - alpha_t) * sum over masked l of -log p(x_0^l | z_t)     (MDLM's discrete-time NELBO)
                 and as T -> infinity the weight becomes -alpha'(t) / (1 - alpha(t)) = 1 / t       (MDLM's continuous-time NELBO)
"""
from __future__ import annotations

import math

import torch

from .._validate import check_callable, check_choice, check_int, check_positive_int, check_real, check_tensor

__all__ = ["KINDS", "check_tokens", "D3PM", "d3pm", "emission", "vb_terms", "prior_term", "hybrid_loss",
           "carry_over", "mdlm_weight", "mask_tokens", "mdlm_loss", "masked_nelbo_exact", "mdlm_sample",
           "d3pm_sample"]

KINDS = ("uniform", "absorbing")
_TINY = 1e-30


def check_tokens(name: str, z, states: int, what: str = "") -> torch.Tensor:
    """z: (B, L) integer tokens in 0..states-1, as long; a clear error names the first bad token."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a (B, L) tensor of token ids, got {type(z).__name__}")
    if z.is_floating_point() or z.is_complex() or z.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {z.dtype}")
    if z.ndim != 2:
        raise ValueError(f"{name} must have shape (B, L), got {tuple(z.shape)}")
    bad = (z < 0) | (z >= states)
    if bool(bad.any()):
        b, pos = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{name} holds token {int(z[b, pos])} at row {b}, position {pos}: outside the vocabulary "
                         f"0..{states - 1}{f' ({what})' if what else ''}")
    return z.long()


def emission(kind: str, K: int, z: torch.Tensor, alpha_bar) -> torch.Tensor:
    """q(z_t = z | x_0 = k) for every data token k: (B, L, K), from z: (B, L) and alpha_bar: (B,)
    (or a float): column z of Qbar_t, alpha_bar [k = z] + (1 - alpha_bar) m[z]."""
    check_choice("kind", kind, KINDS)
    z = check_tokens("z", z, K + (kind == "absorbing"), f"K={K} data tokens" + (f" and the mask {K}" if kind == "absorbing" else ""))
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1, 1)
    onehot = torch.nn.functional.one_hot(z.clamp(max=K - 1), K).double() * (z < K)[..., None]
    m_z = torch.full_like(z, 1.0 / K, dtype=torch.float64) if kind == "uniform" else (z == K).double()
    return ab * onehot + (1 - ab) * m_z[..., None]


class D3PM:
    """A discrete diffusion of `kind` ("uniform" / "absorbing") over K data tokens with T steps.
    alpha_bar: (T + 1,) float64 keep-probabilities, alpha_bar[0] = 1, non-increasing, >= 0. Timesteps t
    are integers 1..T (an int, or a (B,) long tensor, one per row)."""

    def __init__(self, kind: str, K: int, alpha_bar):
        check_choice("kind", kind, KINDS)
        self.kind, self.K = kind, check_positive_int("K", K)
        ab = check_tensor("alpha_bar", torch.as_tensor(alpha_bar, dtype=torch.float64), ndim=1, finite=True)
        if len(ab) < 2 or abs(float(ab[0]) - 1) > 1e-12 or bool((ab < 0).any()) or bool((ab[1:] > ab[:-1]).any()):
            raise ValueError("alpha_bar must be (T + 1,) with alpha_bar[0] = 1, non-increasing and >= 0, got "
                             f"{ab.tolist()[:6]}...")
        self.alpha_bar, self.T = ab.clone(), len(ab) - 1
        self.S = K + (kind == "absorbing")
        self.mask = K if kind == "absorbing" else None
        self.m = torch.full((self.S,), 1.0 / K, dtype=torch.float64) if kind == "uniform" else \
            torch.nn.functional.one_hot(torch.tensor(K), self.S).double()

    def __repr__(self):
        return f"D3PM(kind={self.kind!r}, K={self.K}, T={self.T})"

    @property
    def betas(self) -> torch.Tensor:
        """(T,) beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} (1 where alpha_bar_{t-1} = 0)."""
        prev, cur = self.alpha_bar[:-1], self.alpha_bar[1:]
        return torch.where(prev > 0, 1 - cur / prev.clamp_min(_TINY), torch.ones_like(cur))

    def _t(self, t, B: int, lo: int = 1) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            if t.is_floating_point() or t.shape != (B,):
                raise ValueError(f"t must be an int or a ({B},) integer tensor, got dtype {t.dtype}, shape {tuple(t.shape)}")
            if bool(((t < lo) | (t > self.T)).any()):
                raise ValueError(f"t must lie in {lo}..{self.T}, got values {t.min().item()}..{t.max().item()}")
            return t.long()
        return torch.full((B,), check_int("t", t, lo=lo, hi=self.T), dtype=torch.long)

    def Q(self, t: int) -> torch.Tensor:
        """The one-step matrix Q_t: (S, S), t in 1..T."""
        b = float(self.betas[check_int("t", t, lo=1, hi=self.T) - 1])
        return (1 - b) * torch.eye(self.S, dtype=torch.float64) + b * self.m.expand(self.S, self.S)

    def Qbar(self, t: int) -> torch.Tensor:
        """The cumulative matrix Qbar_t = Q_1 ... Q_t: (S, S), t in 0..T (closed form, module doc)."""
        a = float(self.alpha_bar[check_int("t", t, lo=0, hi=self.T)])
        return a * torch.eye(self.S, dtype=torch.float64) + (1 - a) * self.m.expand(self.S, self.S)

    def _rows(self, p: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """p Qbar for probabilities p: (B, L, S) at levels ab: (B,)."""
        ab = ab.reshape(-1, 1, 1)
        return ab * p + (1 - ab) * p.sum(-1, keepdim=True) * self.m

    def _pad(self, p: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(p.double(), (0, self.S - p.shape[-1]))

    def q_xt(self, x0: torch.Tensor, t) -> torch.Tensor:
        """q(x_t | x_0) = row x_0 of Qbar_t: (B, L, S), from x0: (B, L) data tokens."""
        x0 = check_tokens("x0", x0, self.K, "data tokens")
        ab = self.alpha_bar[self._t(t, len(x0), lo=0)]
        return self._rows(torch.nn.functional.one_hot(x0, self.S).double(), ab)

    def sample_xt(self, x0: torch.Tensor, t, generator=None) -> torch.Tensor:
        """x_t ~ q(x_t | x_0): (B, L) tokens."""
        return _categorical(self.q_xt(x0, t), generator)

    def posterior(self, xt: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
        """q(x_{t-1} | x_t, x_0): (B, L, S) for t >= 1 (D3PM eq. 3); x0: (B, L) tokens."""
        x0 = check_tokens("x0", x0, self.K, "data tokens")
        return self.reverse_probs(torch.nn.functional.one_hot(x0, self.K).double(), xt, t)

    def reverse_probs(self, p_x0: torch.Tensor, xt: torch.Tensor, t, paper_form: bool = False) -> torch.Tensor:
        """p(x_{t-1} | x_t) = sum_x0 q(x_{t-1} | x_t, x0) p_x0(x0): (B, L, S), from p_x0: (B, L, K) and
        xt: (B, L). paper_form: D3PM eq. 4, sum_x0 q(x_{t-1}, x_t | x0) p_x0(x0), normalised."""
        xt = check_tokens("xt", xt, self.S, f"{self.kind} diffusion over K={self.K}")
        check_tensor("p_x0", p_x0, ndim=3)
        if p_x0.shape != (*xt.shape, self.K):
            raise ValueError(f"p_x0 must have shape {(*xt.shape, self.K)}, got {tuple(p_x0.shape)}")
        t = self._t(t, len(xt))
        b = self.betas[t - 1].reshape(-1, 1, 1)
        # step 1: fact1[i] = Q_t[i, x_t] = (1 - beta_t) [i = x_t] + beta_t m[x_t]
        fact1 = (1 - b) * torch.nn.functional.one_hot(xt, self.S).double() + b * self.m[xt][..., None]
        p = self._pad(p_x0)
        if not paper_form:     # step 2: weigh each x0 by 1 / q(x_t | x0) = 1 / Qbar_t[x0, x_t] (0 where impossible)
            den = emission(self.kind, self.K, xt, self.alpha_bar[t])
            p = self._pad(torch.where(den > 0, p_x0.double() / den.clamp_min(_TINY), torch.zeros_like(den)))
        out = fact1 * self._rows(p, self.alpha_bar[t - 1])        # step 3: times x0 Qbar_{t-1}, summed over x0
        return out / out.sum(-1, keepdim=True).clamp_min(_TINY)


def d3pm(kind: str, K: int, T: int, schedule: str = "linear") -> D3PM:
    """D3PM with T steps. "linear": alpha_bar_t = 1 - t / T (D3PM's absorbing schedule beta_t = 1 / (T - t + 1));
    "cosine": alpha_bar_t = cos(pi t / (2 T))^2 (Hoogeboom et al. 2021, used by D3PM for the uniform kind)."""
    check_positive_int("T", T)
    check_choice("schedule", schedule, ("linear", "cosine"))
    s = torch.arange(T + 1, dtype=torch.float64) / T
    return D3PM(kind, K, 1 - s if schedule == "linear" else torch.cos(math.pi * s / 2) ** 2)


def _categorical(p: torch.Tensor, generator=None) -> torch.Tensor:
    """One draw per row of p: (B, L, S) probabilities -> (B, L) long."""
    flat = p.reshape(-1, p.shape[-1]).float().clamp_min(0)
    return torch.multinomial(flat, 1, generator=generator).reshape(p.shape[:-1])


def _call(denoiser, z: torch.Tensor, ab: torch.Tensor, K: int) -> torch.Tensor:
    p = denoiser(z, ab)
    if not isinstance(p, torch.Tensor) or p.shape != (*z.shape, K):
        raise ValueError(f"the denoiser must return p(x_0 | z) of shape {(*z.shape, K)}, got "
                         f"{tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__}")
    return p


# ---- D3PM losses -----------------------------------------------------------------------------------

def _kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return torch.where(q > 0, q * (q.clamp_min(_TINY).log() - p.clamp_min(_TINY).log()), torch.zeros_like(q)).sum(-1)


def vb_terms(proc: D3PM, p_x0: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t) -> torch.Tensor:
    """The L_vb term L_{t-1} per sequence: (B,). KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) summed over
    positions for t >= 2, -log p(x_0 | x_1) for t = 1 (D3PM section 3). p_x0: (B, L, K); x0, xt: (B, L)."""
    t = proc._t(t, len(xt))
    p = proc.reverse_probs(p_x0, xt, t)
    kl = _kl(proc.posterior(xt, x0, t), p)
    nll = -p.gather(-1, x0[..., None]).squeeze(-1).clamp_min(_TINY).log()
    return torch.where((t == 1)[:, None], nll, kl).sum(-1)


def prior_term(proc: D3PM, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || m) per sequence: (B,) (0 for the absorbing process, which ends all masked)."""
    return _kl(proc.q_xt(x0, proc.T), proc.m.expand(*x0.shape, proc.S)).sum(-1)


def hybrid_loss(proc: D3PM, denoiser, x0: torch.Tensor, generator=None, lam: float = 0.01) -> torch.Tensor:
    """D3PM's hybrid loss per sequence, (B,): T * L_{t-1} at one random t in 1..T per row (an unbiased
    estimate of sum_t L_{t-1}) + L_T + lam * (-log p(x_0 | x_t)) (D3PM section 3.4). x0: (B, L)."""
    check_callable("denoiser", denoiser, "denoiser(z, alpha_bar) -> (B, L, K) probabilities")
    lam = check_real("lam", lam, lo=0)
    t = torch.randint(1, proc.T + 1, (len(x0),), generator=generator)
    xt = proc.sample_xt(x0, t, generator)
    p_x0 = _call(denoiser, xt, proc.alpha_bar[t], proc.K)
    ce = -p_x0.gather(-1, x0[..., None]).squeeze(-1).clamp_min(_TINY).log().sum(-1)
    return proc.T * vb_terms(proc, p_x0, x0, xt, t) + prior_term(proc, x0) + lam * ce


# ---- MDLM: masked diffusion -----------------------------------------------------------------------

def carry_over(p_x0: torch.Tensor, z: torch.Tensor, K: int) -> torch.Tensor:
    """SUBS (MDLM's substitution parameterisation): unmasked positions of z: (B, L) keep their token, p = onehot(z);
    masked ones (z = K) keep p_x0: (B, L, K), which never names the mask."""
    keep = (z < K)[..., None]
    return torch.where(keep, torch.nn.functional.one_hot(z.clamp(max=K - 1), K).to(p_x0.dtype), p_x0)


def mdlm_weight(alpha_s, alpha_t):
    """The weight of the masked cross-entropy in one step s < t: (alpha_s - alpha_t) / (1 - alpha_t)
    (MDLM's discrete-time NELBO); floats or tensors. With alpha(t) = 1 - t and s = t - dt it is dt / t: the
    continuous weight -alpha'(t) / (1 - alpha(t)) = 1 / t times dt."""
    return (alpha_s - alpha_t) / (1 - alpha_t)


def mask_tokens(x0: torch.Tensor, alpha, K: int, u: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """z_t: each token of x0: (B, L) kept with probability alpha (a float or (B,)), else the mask K.
    u: optional (B, L) uniforms (common random numbers: the same u at every alpha nests the masks)."""
    x0 = check_tokens("x0", x0, K, "data tokens")
    if u is None:
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64)
    a = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1)
    return torch.where(u < a, x0, torch.full_like(x0, K))


def mdlm_loss(denoiser, x0: torch.Tensor, K: int, generator=None) -> torch.Tensor:
    """MDLM's continuous-time NELBO estimate per sequence, (B,): t ~ U(0, 1) (stratified over the batch),
    alpha = 1 - t, (1 / t) * sum over masked positions of -log p(x_0^l | z_t) (MDLM's continuous-time NELBO)."""
    check_callable("denoiser", denoiser, "denoiser(z, alpha_bar) -> (B, L, K) probabilities")
    x0 = check_tokens("x0", x0, K, "data tokens")
    B = len(x0)
    t = ((torch.arange(B, dtype=torch.float64) + torch.rand(1, generator=generator, dtype=torch.float64)) / B)
    t = t[torch.randperm(B, generator=generator)].clamp_min(1e-4)
    z = mask_tokens(x0, 1 - t, K, generator=generator)
    p = carry_over(_call(denoiser, z, 1 - t, K), z, K)
    ce = -p.gather(-1, x0[..., None]).squeeze(-1).clamp_min(_TINY).log()
    return (ce * (z == K)).sum(-1) / t.to(ce.dtype)


def masked_nelbo_exact(denoiser, x: torch.Tensor, K: int, steps: int | None = None) -> torch.Tensor:
    """The masked-diffusion NELBO of each sequence x: (B, L), L <= 12, by enumerating all 2^L masks,
    for a denoiser that ignores the level (as the exact one and MDLM's time-free networks do). steps=None:
    continuous time, sum_masks B(k, L - k + 1) CE(mask) (k masked, CE the masked cross-entropy); steps=T:
    the T-step D3PM absorbing NELBO, sum_i mdlm_weight(1 - (i-1)/T, 1 - i/T) E_{z ~ q_i}[CE]. Returns (B,)."""
    x = check_tokens("x", x, K, "data tokens")
    B, L = x.shape
    if L > 12:
        raise ValueError(f"x has L={L} positions; the enumeration of 2^L masks is limited to L <= 12")
    bits = ((torch.arange(2 ** L)[:, None] >> torch.arange(L)) & 1).bool()          # (M, L), True = masked
    k = bits.sum(1).double()
    if steps is None:
        kk = k.clamp_min(1)
        w = torch.exp(torch.lgamma(kk) + torch.lgamma(L - kk + 1) - math.lgamma(L + 1)) * (k > 0)
    else:
        t = torch.arange(1, check_positive_int("steps", steps) + 1, dtype=torch.float64)[:, None] / steps
        w = (mdlm_weight(1 - t + 1 / steps, 1 - t) * t ** k * (1 - t) ** (L - k)).sum(0)
    out = []
    for b in range(B):
        z = torch.where(bits, torch.full((2 ** L, L), K), x[b].expand(2 ** L, L))
        p = carry_over(_call(denoiser, z, torch.full((2 ** L,), 0.5, dtype=torch.float64), K), z, K)
        ce = -(p.gather(-1, x[b].expand(2 ** L, L)[..., None]).squeeze(-1).double().clamp_min(_TINY).log() * bits).sum(1)
        out.append((w * ce).sum())
    return torch.stack(out)


# ---- samplers ---------------------------------------------------------------------------------------

def mdlm_sample(denoiser, n: int, L: int, K: int, steps: int, generator=None, trajectory: bool = False):
    """MDLM ancestral sampling (D3PM absorbing with alpha = 1 - t): start all masked;
    at each of `steps` steps t -> s each masked token is revealed with probability mdlm_weight(alpha_s,
    alpha_t), drawn from the denoiser; revealed tokens never change (carry-over). Returns (n, L) tokens,
    or with trajectory a list of steps + 1 states (n, L), all masked first."""
    check_callable("denoiser", denoiser, "denoiser(z, alpha_bar) -> (B, L, K) probabilities")
    n, L, K, steps = (check_positive_int(k, v) for k, v in (("n", n), ("L", L), ("K", K), ("steps", steps)))
    z = torch.full((n, L), K, dtype=torch.long)
    traj = [z.clone()]
    for i in range(steps, 0, -1):
        a_t, a_s = 1 - i / steps, 1 - (i - 1) / steps                                   # 1. the two levels
        p = carry_over(_call(denoiser, z, torch.full((n,), a_t, dtype=torch.float64), K), z, K)   # 2. p(x0 | z_t)
        reveal = (z == K) & (torch.rand(z.shape, generator=generator, dtype=torch.float64) < mdlm_weight(a_s, a_t))
        z = torch.where(reveal, _categorical(p, generator), z)                          # 3. reveal, carry the rest
        traj.append(z.clone())
    return traj if trajectory else z


def d3pm_sample(proc: D3PM, denoiser, n: int, L: int, generator=None, trajectory: bool = False):
    """D3PM ancestral sampling: x_T ~ m (uniform tokens, or all masked), then x_{t-1} ~ reverse_probs(
    p(x0 | x_t), x_t, t) for t = T..1. Returns (n, L) data tokens (or the list of T + 1 states)."""
    check_callable("denoiser", denoiser, "denoiser(z, alpha_bar) -> (B, L, K) probabilities")
    n, L = check_positive_int("n", n), check_positive_int("L", L)
    z = _categorical(proc.m.expand(n, L, proc.S), generator)
    traj = [z.clone()]
    for t in range(proc.T, 0, -1):
        p_x0 = _call(denoiser, z, proc.alpha_bar[t].expand(n), proc.K)
        z = _categorical(proc.reverse_probs(p_x0, z, t), generator)
        traj.append(z.clone())
    return traj if trajectory else z


def __getattr__(name):
    if name == "CHECKPOINT_MODELS":                 # the network lives in discrete_models (imported on demand)
        from .discrete_models import CategoricalMLP
        return (CategoricalMLP,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
