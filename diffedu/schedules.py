"""Noise schedules: one frozen dataclass over alpha_bar (float64) and everything derived.

Notation (DDPM, Ho et al. 2020; survey 2.1):
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,      eps ~ N(0, I)
    beta_t = 1 - alpha_t,  alpha_t = alpha_bar_t / alpha_bar_{t-1}
    SNR_t = alpha_bar_t / (1 - alpha_bar_t),  log-SNR lambda_t = log SNR_t
    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)   (the variance-exploding noise level of
              x_t / sqrt(alpha_bar_t), the sigma of EDM / k-diffusion)
A schedule has N entries; entry i belongs to the original integer timestep `timesteps[i]`
(0 .. T-1 for a full schedule; a subset after `respace`). Models are always called with
`timesteps[i]`, so a respaced schedule drives a model trained on the full one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._validate import check_choice, check_positive_int


@dataclass(frozen=True)
class NoiseSchedule:
    """alpha_bar: (N,) float64, non-increasing in (0, 1]; timesteps: (N,) long."""
    alpha_bar: torch.Tensor
    timesteps: torch.Tensor
    name: str = "custom"

    def __post_init__(self):
        ab = torch.as_tensor(self.alpha_bar, dtype=torch.float64)
        if ab.ndim != 1 or len(ab) < 1:
            raise ValueError(f"alpha_bar must be a non-empty 1D tensor, got shape {tuple(ab.shape)}")
        if not ((ab > 0) & (ab <= 1)).all():
            raise ValueError("alpha_bar must lie in (0, 1]; got values "
                             f"in [{ab.min().item():.3g}, {ab.max().item():.3g}]")
        if len(ab) > 1 and not (ab[1:] <= ab[:-1]).all():
            raise ValueError("alpha_bar must be non-increasing (more noise at later t)")
        ts = torch.as_tensor(self.timesteps, dtype=torch.long)
        if ts.shape != ab.shape:
            raise ValueError(f"timesteps has shape {tuple(ts.shape)} but alpha_bar has {tuple(ab.shape)}")
        object.__setattr__(self, "alpha_bar", ab)
        object.__setattr__(self, "timesteps", ts)

    def __len__(self) -> int:
        return len(self.alpha_bar)

    @property
    def alphas(self) -> torch.Tensor:
        """alpha_i = alpha_bar_i / alpha_bar_{i-1} (alpha_bar_{-1} = 1), per entry of this schedule."""
        prev = torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])
        return self.alpha_bar / prev

    @property
    def betas(self) -> torch.Tensor:
        return 1.0 - self.alphas

    @property
    def log_snr(self) -> torch.Tensor:
        return torch.log(self.alpha_bar) - torch.log1p(-self.alpha_bar)

    @property
    def sigmas(self) -> torch.Tensor:
        """EDM noise level sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
        return torch.sqrt((1.0 - self.alpha_bar) / self.alpha_bar)

    @property
    def t_continuous(self) -> torch.Tensor:
        """Times in [0, 1]: timesteps / T_max, with T_max = the last original step + 1."""
        return (self.timesteps.double() + 1) / (self.timesteps[-1].double() + 1)

    def respace(self, steps: int, spacing: str = "linspace") -> "NoiseSchedule":
        """Keep `steps` of the N entries. The betas of the result are recomputed from alpha_bar
        (improved DDPM, Nichol & Dhariwal 2021, section 4). `spacing` names the entries kept
        with the established names (diffusers' `timestep_spacing`; Lin et al. 2024, "Common
        diffusion noise schedules and sample steps are flawed", Table 2):
            "linspace"   round(linspace(0, N-1, steps)): both ends kept
            "leading"    0, k, 2k, ..., (steps-1) k with k = N // steps (DDIM's original code);
                         it never reaches the noisiest entry (980 of 999 at 50 steps), so a
                         sampler starting from pure noise starts at a level it was not given
            "trailing"   round(N - j N / steps) - 1 for j = 0..steps-1: N-1, N-1-k, ..., k-1
                         (ends at the noisiest entry; Lin et al.'s recommendation)
            "quadratic"  round(linspace(0, sqrt(N-1), steps)^2) (DDIM's CIFAR-10 choice)
        steps = 1 keeps the noisiest entry whatever the spacing."""
        check_positive_int("steps", steps)
        n = len(self)
        if steps > n:
            raise ValueError(f"cannot respace a {n}-step schedule to {steps} steps; choose steps <= {n}")
        check_choice("spacing", spacing, {"linspace", "leading", "trailing", "quadratic"})
        if steps == 1:
            idx = torch.tensor([n - 1])
        elif spacing == "linspace":
            idx = torch.linspace(0, n - 1, steps, dtype=torch.float64).round().long()
        elif spacing == "leading":
            idx = torch.arange(steps) * (n // steps)
        elif spacing == "trailing":
            idx = (n - torch.arange(steps, dtype=torch.float64) * (n / steps)).round().long().flip(0) - 1
        else:
            idx = (torch.linspace(0, math.sqrt(n - 1), steps, dtype=torch.float64) ** 2).round().long()
        idx = torch.unique(idx)
        if len(idx) < steps:  # rounding collisions (quadratic at small t): fill greedily
            rest = [i for i in range(n) if i not in set(idx.tolist())]
            idx = torch.sort(torch.cat([idx, torch.tensor(rest[: steps - len(idx)])])).values
        return NoiseSchedule(self.alpha_bar[idx], self.timesteps[idx], f"{self.name}[{steps}]")

    def at(self, i, like: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_bar at entry index i (int or LongTensor (B,)), as a float tensor shaped to
        broadcast against `like` (B, ...): (B, 1, ..., 1)."""
        ab = self.alpha_bar[torch.as_tensor(i, dtype=torch.long).cpu()]
        if like is None:
            return ab
        ab = ab.to(device=like.device, dtype=like.dtype)
        return ab.reshape(ab.shape + (1,) * (like.ndim - ab.ndim))

    def index_of(self, t) -> torch.Tensor:
        """Entry indices of original integer timesteps t (raises if a t is not in this schedule)."""
        t = torch.as_tensor(t, dtype=torch.long).cpu()
        pos = torch.searchsorted(self.timesteps, t.clamp(min=0))
        pos = pos.clamp(max=len(self) - 1)
        if not (self.timesteps[pos] == t).all():
            raise ValueError(f"timestep(s) {t.tolist()} not in this schedule "
                             f"(which has {len(self)} steps from {self.timesteps[0].item()} "
                             f"to {self.timesteps[-1].item()})")
        return pos

    def alpha_bar_of(self, t, like: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_bar at original timesteps t (int or (B,)), shaped to broadcast against `like`.
        The one lookup from a model's timestep to its noise level."""
        return self.at(self.index_of(t), like)

    def locate(self, alpha_bar) -> tuple[int, float]:
        """THE rule from a continuous noise level to schedule entries: the fractional entry
        position of `alpha_bar` (a float), found by linear interpolation in log-SNR, returned as
        (lo, w): the level lies between entries lo and lo + 1, a fraction w of the way (w = 0 at
        an entry). Levels outside the schedule's range go to its end entries (w = 0)."""
        ab = float(alpha_bar)
        lam = math.inf if ab >= 1 else (-math.inf if ab <= 0 else math.log(ab) - math.log1p(-ab))
        lam_sched = self.log_snr                                     # non-increasing in the entry
        n = len(self)
        if n == 1 or lam >= float(lam_sched[0]):
            return 0, 0.0
        if lam <= float(lam_sched[-1]):
            return n - 1, 0.0
        hi = int(torch.searchsorted(-lam_sched, torch.tensor(-lam, dtype=torch.float64)))  # first entry with lam_i <= lam
        lo = hi - 1
        l0, l1 = float(lam_sched[lo]), float(lam_sched[hi])
        w = (l0 - lam) / (l0 - l1) if l0 != l1 else 0.0
        return (hi, 0.0) if w >= 1 else (lo, w)

    def nearest(self, alpha_bar) -> int:
        """The entry nearest `alpha_bar` in log-SNR (`locate` rounded)."""
        lo, w = self.locate(alpha_bar)
        return lo + 1 if w > 0.5 else lo


def from_betas(betas, name: str = "custom") -> NoiseSchedule:
    """Schedule from betas: (T,), each in (0, 1)."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.ndim != 1 or len(betas) < 1:
        raise ValueError(f"betas must be a non-empty 1D sequence, got shape {tuple(betas.shape)}")
    if not ((betas > 0) & (betas < 1)).all():
        raise ValueError(f"betas must lie in (0, 1), got values in "
                         f"[{betas.min().item():.3g}, {betas.max().item():.3g}]")
    return NoiseSchedule(torch.cumprod(1 - betas, 0), torch.arange(len(betas)), name)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """DDPM's linear betas from beta_start to beta_end (Ho et al. 2020, section 4)."""
    check_positive_int("T", T)
    return from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), "linear")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17):
    alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi / 2), with betas
    1 - alpha_bar(t+1)/alpha_bar(t) clipped to max_beta (to avoid the singularity at t = T)."""
    check_positive_int("T", T)
    if s <= 0:
        raise ValueError(f"s must be > 0, got {s}")
    f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    u = torch.arange(T + 1, dtype=torch.float64) / T
    ab = f(u) / f(torch.zeros((), dtype=torch.float64))
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
    return from_betas(betas, "cosine")


def sigmoid_schedule(T: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> NoiseSchedule:
    """Sigmoid schedule (Jabri et al. 2022; Chen 2023, Algorithm 1): with u = t/T,
    alpha_bar(u) = (sig(end/tau) - sig((u (end - start) + start)/tau)) / (sig(end/tau) - sig(start/tau)),
    so alpha_bar(0) = 1 and alpha_bar(1) = 0; betas clipped to [1e-8, 0.999]."""
    check_positive_int("T", T)
    if not end > start or tau <= 0:
        raise ValueError(f"need end > start and tau > 0, got start={start}, end={end}, tau={tau}")
    sig = lambda z: torch.sigmoid(torch.as_tensor(z, dtype=torch.float64))
    u = torch.arange(T + 1, dtype=torch.float64) / T
    v_start, v_end = sig(start / tau), sig(end / tau)
    ab = (-sig((u * (end - start) + start) / tau) + v_end) / (v_end - v_start)
    betas = (1 - ab[1:] / ab[:-1]).clamp(1e-8, 0.999)
    return from_betas(betas, "sigmoid")


def karras_sigmas(n: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM noise levels (Karras et al. 2022, eq. 5), decreasing from sigma_max to sigma_min:
    sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    check_positive_int("n", n)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def karras_schedule(n: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> NoiseSchedule:
    """The EDM sigmas as a (variance-preserving) schedule: alpha_bar = 1 / (1 + sigma^2), in
    increasing-noise order; timesteps 0 .. n-1 (a model for it is conditioned on the index or,
    better, on sigma via `schedule.sigmas`)."""
    sig = karras_sigmas(n, sigma_min, sigma_max, rho).flip(0)
    return NoiseSchedule(1.0 / (1.0 + sig ** 2), torch.arange(n), "karras")


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule,
             "sigmoid": sigmoid_schedule, "karras": karras_schedule}


def get_schedule(name: str, T: int = 1000, **kwargs) -> NoiseSchedule:
    """Schedule by name: one of SCHEDULES ('linear', 'cosine', 'sigmoid', 'karras')."""
    check_choice("schedule", name, SCHEDULES)
    return SCHEDULES[name](T, **kwargs)
