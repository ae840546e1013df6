"""Guidance distillation (Meng, Rombach, Gao, Kingma, Ermon, Ho & Salimans 2023, "On distillation
of guided diffusion models", section 3.1 (stage one) and 3.2 (stage two)).

Classifier-free guidance costs two network calls a step (conditional and unconditional). Stage
one trains ONE network, conditioned on the guidance weight w, to output the guided prediction;
stage two step-distils that student progressively (progressive.py) with w as an extra input.

Convention. diffedu's guidance (guidance.py, convention "scale") writes
    x_w = x_u + w (x_c - x_u),          w = 1 conditional, w = 0 unconditional;
Meng et al. follow Ho & Salimans, x_w = (1 + w') x_c - w' x_u, so w' = w - 1. The student here
takes diffedu's w; its trained range is [W_MIN, W_MAX] = [0, 4] (w' in [-1, 3]; the paper trains
w' in [0, 4]), and a w outside it is refused (the student was never taught there).

Notation: cosine time as progressive.py; stage one loss (eq. 5 of the paper, truncated-SNR weight)
    L = E_{w ~ U[W_MIN, W_MAX], t, x} max(SNR_t, 1) || x_hat_student(z_t, t, y, w) - x_w(z_t, t, y) ||^2.
"""
from __future__ import annotations

import torch

from .._validate import check_int, check_positive_int, check_real
from ..train.fit import fit
from .common import LevelMLP, cosine_alpha_sigma, level_teacher
from .progressive import _col, ddim_move, pd_sample, progressive_distill, student_x0

__all__ = ["W_MIN", "W_MAX", "cfg_teacher", "check_w", "gd_loss", "guidance_distill", "gd_step_distill",
           "gd_sample", "cfg_sample", "meng_w", "student_cfg_mse"]

W_MIN, W_MAX = 0.0, 4.0


def meng_w(w: float) -> float:
    """Meng et al.'s (and Ho & Salimans') guidance weight for diffedu's w: w' = w - 1."""
    return w - 1.0


def check_w(w, w_range=(W_MIN, W_MAX)):
    """w (a float or (B,) tensor) inside the student's trained range, else a ValueError."""
    wt = torch.as_tensor(w, dtype=torch.float64)
    if bool(torch.isnan(wt).any()) or float(wt.min()) < w_range[0] - 1e-9 or float(wt.max()) > w_range[1] + 1e-9:
        raise ValueError(f"w must lie in the student's trained range [{w_range[0]}, {w_range[1]}] (diffedu's "
                         f"'scale' convention: 1 = conditional), got {wt.reshape(-1)[:4].tolist()}")
    return w


def cfg_teacher(teacher, null_label: int = -1):
    """Two-pass CFG x_w = x_u + w (x_c - x_u) as x0(z, t (B,), y, w) in cosine time: 2 teacher calls."""
    lt = level_teacher(teacher)

    def x0(z, t, y, w):
        ab = cosine_alpha_sigma(t)[0] ** 2
        x_c, x_u = lt(z, ab, y=y), lt(z, ab, y=torch.full((len(z),), null_label))
        return x_u + _col(torch.as_tensor(w, dtype=torch.float64).reshape(-1).expand(len(z)), z) * (x_c - x_u)
    return x0


def gd_loss(student, teacher_x0, x, y, w, generator=None):
    """Stage one: regress the student's x_hat onto the two-pass CFG x_w (truncated-SNR weight)."""
    t = torch.rand(len(x), generator=generator, dtype=torch.float64).clamp(1e-3, 1.0)
    a, s = cosine_alpha_sigma(t)
    z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=generator).to(x)
    with torch.no_grad():
        target = teacher_x0(z, t, y, w)
    weight = _col(torch.clamp((a / s) ** 2, min=1.0), x)
    return (weight * (student_x0(student, z, t, y=y, w=w) - target) ** 2).sum(-1).mean()


def _pairs(gmm, w_range):
    """(n, g) -> (x, {y, w}): data of the whole mixture, a label y drawn independently (uniform over
    the classes) and w ~ U[w_range]. Independent y: guided trajectories of every (y, w) pass through
    regions of every class (at w = 0 they follow the unconditional model), so z_t must cover them all."""
    C = int(gmm.labels.max()) + 1

    def sample(n, g):
        x = gmm.sample(n, g)
        w = w_range[0] + (w_range[1] - w_range[0]) * torch.rand(n, generator=g, dtype=torch.float64)
        return x, {"y": torch.randint(0, C, (n,), generator=g), "w": w.float()}
    return sample


def guidance_distill(gmm, steps: int = 3000, batch_size: int = 512, lr: float = 1e-3, seed: int = 0,
                     w_range=(W_MIN, W_MAX), progress: bool = False, hidden: int = 128, depth: int = 3):
    """Stage one on a labelled GaussianMixture (its exact class denoisers are the teacher).
    Returns (student LevelMLP(y, w), losses); student.w_range is the trained range."""
    if getattr(gmm, "labels", None) is None:
        raise ValueError("guidance distillation needs a labelled GaussianMixture (labels=(K,))")
    check_positive_int("steps", steps)
    check_real("lr", lr, lo=0, lo_open=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    teacher_x0, sample = cfg_teacher(gmm), _pairs(gmm, w_range)
    torch.manual_seed(seed)
    student = LevelMLP(dim=gmm.D, hidden=hidden, depth=depth, num_classes=int(gmm.labels.max()) + 1, w_embed=True)

    def batch_loss():
        x, c = sample(batch_size, g)
        return gd_loss(student, teacher_x0, x, c["y"], c["w"], g)
    ema, losses = fit(student, batch_loss, steps, lr, ema=0.99, progress=progress, desc="guidance distillation")
    ema.w_range = tuple(w_range)
    return ema, losses


def gd_step_distill(student, gmm, N: int = 16, to: int = 1, steps: int = 1000, **kw):
    """Stage two: progressive distillation of the w-conditioned student (its own teacher), N -> to."""
    w_range = getattr(student, "w_range", (W_MIN, W_MAX))
    students, losses = progressive_distill(student, _pairs(gmm, w_range), N=N, to=to, steps=steps, student=student, **kw)
    for s in students.values():
        s.w_range = w_range
    return students, losses


@torch.no_grad()
def gd_sample(student, z, N: int, y, w):
    """N DDIM steps of the guidance-distilled student from SNR = 0: N network calls."""
    check_w(w, getattr(student, "w_range", (W_MIN, W_MAX)))
    return pd_sample(student, z, N, y=torch.as_tensor(y).reshape(-1).expand(len(z)),
                     w=torch.as_tensor(w, dtype=torch.float32).reshape(-1).expand(len(z)))


@torch.no_grad()
def cfg_sample(gmm, z, N: int, y, w):
    """N DDIM steps of two-pass CFG with the exact teacher from SNR = 0: 2N network calls."""
    x0 = cfg_teacher(gmm)
    y = torch.as_tensor(y).reshape(-1).expand(len(z))
    for i in range(N, 0, -1):
        t = torch.full((len(z),), i / N, dtype=torch.float64)
        z = ddim_move(z, x0(z, t, y, w), t, t - 1.0 / N)
    return z


def student_cfg_mse(student, gmm, ws, n: int = 2000, seed: int = 0):
    """{w: mean over rows of ||x_hat_student - x_w||^2} at t ~ U[0, 1] on class-labelled data."""
    g = torch.Generator().manual_seed(seed)
    teacher_x0, out = cfg_teacher(gmm), {}
    for w in ws:
        x, k = gmm.sample(n, g, return_labels=True)
        y = gmm.labels[k]
        t = torch.rand(n, generator=g, dtype=torch.float64).clamp(1e-3, 1.0)
        a, s = cosine_alpha_sigma(t)
        z = _col(a, x) * x + _col(s, x) * torch.randn(x.shape, generator=g)
        wt = torch.full((n,), float(w))
        with torch.no_grad():
            out[float(w)] = float(((student_x0(student, z, t, y=y, w=wt) - teacher_x0(z, t, y, wt)) ** 2).sum(1).mean())
    return out
