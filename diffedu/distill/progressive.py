"""Progressive distillation (Salimans & Ho 2022, "Progressive distillation for fast sampling of
diffusion models", Algorithm 2): a student learns to take in ONE DDIM step what its teacher does
in TWO; then it becomes the teacher, and the step count halves again, N -> N/2 -> ... -> 1.

Notation (continuous cosine time, t in [0, 1]; section 2 and Appendix of the paper):
    z_t = alpha_t x + sigma_t eps,  alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2)
    DDIM step t -> s:  z_s = alpha_s x_hat + (sigma_s / sigma_t) (z_t - alpha_t x_hat)
    t' = t - 0.5/N, t'' = t - 1/N   (the teacher's two half-steps; t = i/N, i = 1..N)
    target (Algorithm 2):  x~ = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)
        so that ONE DDIM step t -> t'' from x_hat = x~ lands exactly on z_t'' (checked in tests).
    v-parameterisation (section 4): v = alpha eps - sigma x, x_hat = alpha z - sigma v_hat;
    "truncated SNR" weighting: L = max(||x - x_hat||^2, ||eps - eps_hat||^2) = max(SNR, 1) ||x - x_hat||^2.

SNR = 0. Sampling starts at t = 1, where alpha = 0: z_1 is pure noise, and the eps- or x0-forms
of a model are undefined there, but v is not (x_hat = -v). diffedu's NoiseSchedule refuses
alpha_bar = 0 (its entries lie in (0, 1]), so this module leaves the discrete contract and works
in continuous time; the teacher is queried through common.level_teacher: the exact Gaussian
mixture answers alpha_bar = 0 exactly (E[x0]); a network Denoiser is taken at its schedule's
noisiest entry (locate's rule for levels beyond the range).
"""
from __future__ import annotations

import copy

import torch

from .._validate import check_int, check_positive_int, check_real
from ..train.fit import fit
from .common import LevelMLP, cosine_alpha_sigma, level_teacher

__all__ = ["pd_target", "ddim_move", "pd_target_as", "ddim_move_as", "student_x0", "teacher_two_steps", "pd_loss", "pd_sample",
           "progressive_distill", "check_steps"]


def _col(v, x):
    return torch.as_tensor(v, dtype=torch.float64).to(x.device).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def check_steps(N) -> int:
    """A step count of progressive distillation: a power of two >= 1 (each stage halves it)."""
    N = check_positive_int("N (steps)", N)
    if N & (N - 1):
        raise ValueError(f"progressive distillation halves the step count, so N must be a power of two; got {N}")
    return N


def ddim_move(z_t, x_hat, t, s):
    """DDIM (eta = 0) from time t to s in the alpha/sigma form; z_t, x_hat: (B, D); t, s: (B,) or floats.
    At t = 1 (sigma_t = 1, alpha_t = 0) it reads eps_hat = z_t, which is exact at SNR = 0."""
    return ddim_move_as(z_t, x_hat, *cosine_alpha_sigma(t), *cosine_alpha_sigma(s))


def ddim_move_as(z_t, x_hat, a_t, s_t, a_s, s_s):
    """ddim_move at explicit levels (any schedule): z_s = alpha_s x_hat + (sigma_s / sigma_t) (z_t - alpha_t x_hat).
    z_t, x_hat: (B, ...); a_t, s_t, a_s, s_s: floats or (B,) tensors (alpha and sigma of t and s)."""
    a_t, s_t, a_s, s_s = (torch.as_tensor(v, dtype=torch.float64) for v in (a_t, s_t, a_s, s_s))
    return _col(a_s, z_t) * x_hat + _col(s_s / s_t, z_t) * (z_t - _col(a_t, z_t) * x_hat)


def pd_target(z_t, z_tpp, t, tpp):
    """x~ = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t) (Algorithm 2)."""
    return pd_target_as(z_t, z_tpp, *cosine_alpha_sigma(t), *cosine_alpha_sigma(tpp))


def pd_target_as(z_t, z_tpp, a_t, s_t, a_pp, s_pp):
    """pd_target at explicit levels (any schedule, e.g. a discrete image teacher's grid):
    z_t, z_tpp: (B, ...); a_t, s_t, a_pp, s_pp: floats or (B,) tensors. At a clean t'' (alpha 1,
    sigma 0) it is z_t'' itself."""
    a_t, s_t, a_pp, s_pp = (torch.as_tensor(v, dtype=torch.float64) for v in (a_t, s_t, a_pp, s_pp))
    r = s_pp / s_t
    return (z_tpp - _col(r, z_t) * z_t) / _col(a_pp - r * a_t, z_t)


def student_x0(student, z, t, **cond):
    """x_hat = alpha_t z - sigma_t v_hat from a v-predicting LevelMLP (level = 1000 t)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(len(z))
    a, s = cosine_alpha_sigma(t)
    v = student(z, (1000 * t).to(z.dtype), **cond)
    return _col(a, z) * z - _col(s, z) * v


def _teacher_x0(teacher):
    """x0 function of cosine time (z, t (B,), **cond) from a student LevelMLP or a level teacher."""
    if isinstance(teacher, LevelMLP):
        return lambda z, t, **c: student_x0(teacher, z, t, **c)
    lt = level_teacher(teacher)
    return lambda z, t, **c: lt(z, cosine_alpha_sigma(t)[0] ** 2, **c)


def teacher_two_steps(teacher_x0, z_t, t, N, **cond):
    """z_t'': the teacher's two DDIM steps t -> t - 0.5/N -> t - 1/N. teacher_x0(z, t (B,), **cond)."""
    tp, tpp = t - 0.5 / N, t - 1.0 / N
    z_tp = ddim_move(z_t, teacher_x0(z_t, t, **cond), t, tp)
    return ddim_move(z_tp, teacher_x0(z_tp, tp, **cond), tp, tpp)


def pd_loss(student, teacher_x0, x, N, generator=None, **cond):
    """One Monte Carlo estimate of the PD loss on clean x (B, D): t = i/N, i ~ U{1..N}."""
    B = len(x)
    t = torch.randint(1, N + 1, (B,), generator=generator).double() / N
    eps = torch.randn(x.shape, generator=generator).to(x)
    a, s = cosine_alpha_sigma(t)
    z_t = _col(a, x) * x + _col(s, x) * eps
    with torch.no_grad():
        target = pd_target(z_t, teacher_two_steps(teacher_x0, z_t, t, N, **cond), t, t - 1.0 / N)
    x_hat = student_x0(student, z_t, t, **cond)
    snr = (a / s) ** 2
    weight = _col(torch.clamp(snr, min=1.0), x)                   # truncated SNR: max(SNR, 1)
    return (weight * (x_hat - target) ** 2).sum(-1).mean()


def pd_sample(model, z, N, **cond):
    """DDIM from t = 1 (SNR = 0, z: (B, D) pure noise) to t = 0 in N equal steps. model: a
    v-predicting LevelMLP student or any teacher level_teacher accepts (exact GMM, Denoiser)."""
    N = check_positive_int("N (steps)", N)
    x0_fn = _teacher_x0(model)
    for i in range(N, 0, -1):
        t = torch.full((len(z),), i / N, dtype=torch.float64)
        z = ddim_move(z, x0_fn(z, t, **cond), t, t - 1.0 / N)
    return z


def _data_sampler(data):
    """(n, g) -> (x (n, D), cond dict) from a tensor, a GaussianMixture or such a callable."""
    if isinstance(data, torch.Tensor):
        return lambda n, g: (data[torch.randint(0, len(data), (n,), generator=g)], {})
    if hasattr(data, "sample"):
        return lambda n, g: (data.sample(n, g), {})
    if callable(data):
        return data
    raise TypeError(f"data must be a (M, D) tensor, a GaussianMixture or a callable (n, generator) -> (x, cond), "
                    f"got {type(data).__name__}")


def progressive_distill(teacher, data, N: int = 64, to: int = 1, steps: int = 1500, batch_size: int = 512,
                        lr: float = 1e-3, seed: int = 0, student: LevelMLP | None = None, init_steps: int = 2000,
                        progress: bool = False, hidden: int = 128, depth: int = 3):
    """Progressive distillation from `teacher` (GaussianMixture, Denoiser or a LevelMLP student)
    with N steps down to `to` steps (powers of two). data: (M, D) tensor, GaussianMixture, or a
    callable (n, generator) -> (x (n, D), cond dict) whose conditioning (e.g. y, w) is passed to
    student and teacher (guidance distillation).
    A new `student` is first fitted to the teacher's denoiser in v-form (`init_steps`, the
    'network copy' the first stage starts from); each stage runs train.fit for `steps` and is
    initialised from the previous student. Returns {N/2: student, ..., to: student}
    and {N/2: losses, ...}."""
    N, to = check_steps(N), check_steps(to)
    if to >= N:
        raise ValueError(f"to must be smaller than N: N={N}, to={to}")
    check_positive_int("steps", steps)
    check_real("lr", lr, lo=0, lo_open=True)
    seed = check_int("seed", seed, lo=0)
    teacher_x0 = _teacher_x0(teacher)                       # raises TypeError for a non-denoiser
    sample = _data_sampler(data)
    g = torch.Generator().manual_seed(seed)
    if student is None:
        torch.manual_seed(seed)
        student = LevelMLP(hidden=hidden, depth=depth, dim=sample(1, g)[0].shape[1])
        student, _ = fit(student, lambda: _copy_loss(student, teacher_x0, *sample(batch_size, g), g),
                         init_steps, lr, ema=0.99, progress=progress, desc="copy of the teacher")
    students, losses = {}, {}
    while N > to:
        current = copy.deepcopy(student).train().requires_grad_(True)
        n = N

        def batch_loss():
            x, cond = sample(batch_size, g)
            return pd_loss(current, teacher_x0, x, n, g, **cond)
        student, losses[N // 2] = fit(current, batch_loss, steps, lr, ema=0.99, progress=progress,
                                      desc=f"PD {N} -> {N // 2}")
        students[N // 2] = student
        teacher_x0 = _teacher_x0(student)
        N //= 2
    return students, losses


def _copy_loss(student, teacher_x0, x, cond, g):
    """Regression of the student's x_hat onto the teacher's at t ~ U[0, 1] (truncated-SNR weight)."""
    t = torch.rand(len(x), generator=g, dtype=torch.float64).clamp(1e-3, 1.0)
    a, s = cosine_alpha_sigma(t)
    z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=g).to(x)
    with torch.no_grad():
        target = teacher_x0(z, t, **cond)
    w = _col(torch.clamp((a / s) ** 2, min=1.0), x)
    return (w * (student_x0(student, z, t, **cond) - target) ** 2).sum(-1).mean()
