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
import torch

from ._validate import check_choice, check_index, check_positive_int, check_positive_range, check_real, check_tensor


class NoiseSchedule:
    """alpha_bar: (N,) float64, finite, non-increasing in (0, 1]; timesteps: (N,) long, strictly
    increasing and >= 0 (the original integer steps of the entries; `index_of` relies on the
    order). Frozen, like a frozen dataclass: attributes cannot be reassigned, and the tensor
    properties return copies, so editing what `s.alpha_bar` returns in place cannot change s."""

    __slots__ = ("_ab", "_ts", "name")

    def __init__(self, alpha_bar, timesteps, name: str = "custom"):
        if not isinstance(alpha_bar, (torch.Tensor, list, tuple)):
            raise TypeError(f"alpha_bar must be a 1D tensor or sequence of numbers, got {type(alpha_bar).__name__}")
        if not isinstance(timesteps, (torch.Tensor, list, tuple, range)):
            raise TypeError(f"timesteps must be a 1D integer tensor or sequence, got {type(timesteps).__name__}")
        try:
            ab = torch.as_tensor(alpha_bar, dtype=torch.float64).detach().cpu().clone()
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"alpha_bar must be a 1D sequence of numbers, got {alpha_bar!r}") from err
        if ab.ndim != 1 or len(ab) < 1:
            raise ValueError(f"alpha_bar must be a non-empty 1D tensor, got shape {tuple(ab.shape)}")
        if not bool(((ab > 0) & (ab <= 1)).all()):          # NaN fails both comparisons
            raise ValueError("alpha_bar must lie in (0, 1] (finite); got values "
                             f"in [{ab.min().item():.3g}, {ab.max().item():.3g}]")
        if len(ab) > 1 and not bool((ab[1:] <= ab[:-1]).all()):
            raise ValueError("alpha_bar must be non-increasing (more noise at later t)")
        ts = check_index("timesteps", timesteps).detach().cpu().clone()
        if ts.shape != ab.shape:
            raise ValueError(f"timesteps has shape {tuple(ts.shape)} but alpha_bar has {tuple(ab.shape)}")
        if bool((ts < 0).any()) or (len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all())):
            raise ValueError(f"timesteps must be distinct integers >= 0 in increasing order (entry i "
                             f"belongs to timestep timesteps[i]), got {ts.tolist()[:8]}...")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        object.__setattr__(self, "_ab", ab)
        object.__setattr__(self, "_ts", ts)
        object.__setattr__(self, "name", name)

    def __setattr__(self, key, value):
        raise AttributeError(f"NoiseSchedule is frozen: cannot set {key!r}; build a new schedule "
                             f"(e.g. NoiseSchedule(alpha_bar, timesteps) or schedule.respace(steps))")

    __delattr__ = __setattr__

    def __reduce__(self):
        return (NoiseSchedule, (self._ab, self._ts, self.name))

    def __repr__(self) -> str:
        return (f"NoiseSchedule(name={self.name!r}, N={len(self)}, timesteps {int(self._ts[0])}.."
                f"{int(self._ts[-1])}, alpha_bar {float(self._ab[0]):.4g}..{float(self._ab[-1]):.4g})")

    @property
    def alpha_bar(self) -> torch.Tensor:
        """(N,) float64 alpha_bar of each entry (a copy)."""
        return self._ab.clone()

    @property
    def timesteps(self) -> torch.Tensor:
        """(N,) long original timestep of each entry (a copy)."""
        return self._ts.clone()

    def __len__(self) -> int:
        return len(self._ab)

    @property
    def alphas(self) -> torch.Tensor:
        """alpha_i = alpha_bar_i / alpha_bar_{i-1} (alpha_bar_{-1} = 1), per entry of this schedule."""
        prev = torch.cat([self._ab.new_ones(1), self._ab[:-1]])
        return self._ab / prev

    @property
    def betas(self) -> torch.Tensor:
        return 1.0 - self.alphas

    @property
    def log_snr(self) -> torch.Tensor:
        return torch.log(self._ab) - torch.log1p(-self._ab)

    @property
    def sigmas(self) -> torch.Tensor:
        """EDM noise level sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
        return torch.sqrt((1.0 - self._ab) / self._ab)

    @property
    def t_continuous(self) -> torch.Tensor:
        """Times in [0, 1]: timesteps / T_max, with T_max = the last original step + 1."""
        return (self._ts.double() + 1) / (self._ts[-1].double() + 1)

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
        return NoiseSchedule(self._ab[idx], self._ts[idx], f"{self.name}[{steps}]")

    def at(self, i, like: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_bar at entry index i (int or LongTensor (B,)), as a float tensor shaped to
        broadcast against `like` (B, ...): (B, 1, ..., 1)."""
        i = check_index("i (the entry index)", i).cpu()
        if i.numel() and (bool((i < 0).any()) or bool((i >= len(self)).any())):
            raise ValueError(f"entry index i must lie in [0, {len(self) - 1}], got {i.min().item()}..{i.max().item()}")
        return self._at(i, _check_like(like, i, "i"))

    def _at(self, i: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        ab = self._ab[i]
        if like is None:
            return ab
        ab = ab.to(device=like.device, dtype=like.dtype)
        return ab.reshape(ab.shape + (1,) * (like.ndim - ab.ndim))

    def index_of(self, t) -> torch.Tensor:
        """Entry indices of original integer timesteps t (raises if a t is not in this schedule)."""
        t = check_index("t", t).cpu()
        pos = torch.searchsorted(self._ts, t.clamp(min=0))
        pos = pos.clamp(max=len(self) - 1)
        if not bool((self._ts[pos] == t).all()):
            bad = t[self._ts[pos] != t].reshape(-1)[:8].tolist()
            raise ValueError(f"t: timestep(s) {bad} not in this schedule "
                             f"(which has {len(self)} steps from {self._ts[0].item()} "
                             f"to {self._ts[-1].item()})")
        return pos

    def alpha_bar_of(self, t, like: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_bar at original timesteps t (int or (B,)), shaped to broadcast against `like`.
        The one lookup from a model's timestep to its noise level."""
        idx = self.index_of(t)
        return self._at(idx, _check_like(like, idx, "t"))

    def locate(self, alpha_bar) -> tuple[int, float]:
        """THE rule from a continuous noise level to schedule entries: the fractional entry
        position of `alpha_bar` (a float), found by linear interpolation in log-SNR, returned as
        (lo, w): the level lies between entries lo and lo + 1, a fraction w of the way (w = 0 at
        an entry). Levels outside the schedule's range go to its end entries (w = 0)."""
        ab = check_real("alpha_bar", alpha_bar)
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


def _check_like(like, i: torch.Tensor, name: str):
    """`like` (B, ...) to shape a lookup against: a tensor whose batch matches i's (B,) entries."""
    if like is None:
        return None
    check_tensor("like", like)
    if i.ndim == 1 and (like.ndim == 0 or len(like) != len(i)):
        raise ValueError(f"{name} has {len(i)} entries but like has shape {tuple(like.shape)}: "
                         f"give one {name} per row of like")
    return like


def from_betas(betas, name: str = "custom") -> NoiseSchedule:
    """Schedule from betas: (T,), each in (0, 1)."""
    try:
        betas = torch.as_tensor(betas, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"betas must be a 1D sequence of numbers, got {type(betas).__name__}") from err
    if betas.ndim != 1 or len(betas) < 1:
        raise ValueError(f"betas must be a non-empty 1D sequence, got shape {tuple(betas.shape)}")
    if not bool(((betas > 0) & (betas < 1)).all()):                  # NaN fails both comparisons
        raise ValueError(f"betas must lie in (0, 1) (finite), got values in "
                         f"[{betas.min().item():.3g}, {betas.max().item():.3g}]")
    return NoiseSchedule(torch.cumprod(1 - betas, 0), torch.arange(len(betas)), name)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """DDPM's linear betas from beta_start to beta_end (Ho et al. 2020, section 4)."""
    check_positive_int("T", T)
    beta_start = check_real("beta_start", beta_start, lo=0, lo_open=True, hi=1)
    beta_end = check_real("beta_end", beta_end, lo=0, lo_open=True, hi=1)
    if max(beta_start, beta_end) == 1:          # a beta of 1 erases the signal
        raise ValueError(f"betas must lie in (0, 1): beta_start and beta_end must be < 1, got "
                         f"beta_start={beta_start}, beta_end={beta_end}")
    return from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), "linear")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17):
    alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi / 2), with betas
    1 - alpha_bar(t+1)/alpha_bar(t) clipped to max_beta (to avoid the singularity at t = T)."""
    check_positive_int("T", T)
    s = check_real("s", s, lo=0, lo_open=True)
    max_beta = check_real("max_beta", max_beta, lo=0, lo_open=True, hi=1)
    if max_beta == 1:
        raise ValueError("max_beta must be < 1 (a beta of 1 erases the signal), got 1")
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
    start, end = check_real("start", start), check_real("end", end)
    tau = check_real("tau", tau, lo=0, lo_open=True)
    if not end > start:
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
    sigma_min, sigma_max = check_positive_range("sigma_min", sigma_min, "sigma_max", sigma_max)
    rho = check_real("rho", rho, lo=0, lo_open=True)
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
    if not isinstance(name, str):
        raise TypeError(f"schedule name must be a str, one of {sorted(SCHEDULES)}, got {type(name).__name__}")
    check_choice("schedule", name, SCHEDULES)
    return SCHEDULES[name](T, **kwargs)
