"""CoDi: conditional diffusion distillation (Mei, Delbracio, Talebi, Tu, Patel & Milanfar, CVPR 2024,
"CoDi: conditional diffusion distillation for higher-fidelity and faster image generation";
survey section 7.3, reference [24]).

Scope: ONE training stage turns an *unconditional* teacher into a *conditional few-step* sampler.
Here the teacher is the shipped `unet_digits` run with its null class (label 10, the unconditional
model of classifier-free guidance), the condition is a 4x average-pooled thumbnail y = A(x)
(16x16 -> 4x4, `lowres_operator`), shown to the adapter as the nearest-upsampled image
`hint = up(y)` (B, 1, 16, 16), and the student is the paper's parameter-efficient variant
(PE-CoDi): the teacher's weights frozen, a zero-initialised ControlNet (nets/control.py) beside
them is the only thing trained, so only the adapter ships (~0.47 MB).

Notation (DDPM's discrete schedule, alpha_bar = ab; the teacher predicts eps):
    z_t = sqrt(ab_t) x + sqrt(1 - ab_t) eps              the noisy image, eps ~ N(0, I)
    eps_theta(z_t, c, t)                                  the adapted network: frozen base + theta's residuals
    x_theta(z_t, c, t) = (z_t - sqrt(1 - ab_t) eps_theta) / sqrt(ab_t)   its clean-image estimate (Tweedie)
    theta^-                                               the target adapter: EMA of theta (rate mu)
    t_0 = 0 < t_1 < ... < t_N = T - 1                     the distillation grid (`timestep_grid`)
    PF-ODE step (DDIM, eta = 0) from t to s with a model's (x_hat, eps_hat):
        z_s = sqrt(ab_s) x_hat + sqrt(1 - ab_s) eps_hat
Loss of one batch (`codi_loss`):
  1. draw x, its condition c = up(A(x)), n ~ U{1..N}, t = t_n, s = t_{n-1}, and z_t;
  2. solve the PF-ODE from t to s (no gradient) with `ode`:
       "teacher"  the frozen unconditional teacher's DDIM step (the authors' diffusers example);
       "self"     the target model's own conditional step, eps_theta^-(z_t, c, t) (it starts as the
                  teacher at initialisation, and follows the condition as it learns it). It beat
                  "teacher" here (1000 steps each, 64 test digits, 4 calls: measurement PSNR 30.9 vs
                  28.0 dB, PSNR 23.0 vs 21.7 dB): the unconditional teacher's ODE is not the conditional one;
  3. the target x^- = x_theta^-(z_s, c, s) (at s = 0, x^- ~ z_0: the boundary condition);
  4. conditional consistency, written in noise space: eps^- = (z_t - sqrt(ab_t) x^-) / sqrt(1 - ab_t)
     is the noise that makes x_theta(z_t) equal x^-, so
        L_cons = || eps_theta(z_t, c, t) - eps^- ||^2 = (ab_t / (1 - ab_t)) || x_theta(z_t) - x^- ||^2,
     the x-space consistency loss weighted by the SNR (the x-space loss itself divides by
     ab_{T-1} = 4e-5 at the top level and does not train on this schedule);
  5. the conditional diffusion loss L_diff = || eps_theta(z_t, c, t) - eps ||^2 (the paired data (x, c));
  6. L = L_cons + lam * L_diff; theta^- <- mu theta^- + (1 - mu) theta.
Why both terms: L_cons alone is minimised by an adapter that ignores c (the teacher is already
consistent with its own PF-ODE), so only L_diff teaches the condition; L_diff alone trains a
many-step conditional model (controlnet_digits), whose 1-step output is the blurry E[x | c].
Sampling (`codi_sample`, the consistency models' multistep Algorithm 1 on the discrete grid):
x_hat = x_theta(z, c, t_max) with z ~ N(0, I); then for each later level t: z_t = sqrt(ab_t)
x_hat + sqrt(1 - ab_t) n (fresh noise n) and x_hat = x_theta(z_t, c, t). Why t_max = 600, not 999:
on this linear schedule sqrt(ab_999) = 0.0064, so x_theta = (z - sqrt(1 - ab) eps_theta) / 0.0064
magnifies every error of eps_theta 160-fold, and the SNR-weighted loss hardly trains that level (one
call from 999 gives ~6 dB); at 600, sqrt(ab) = 0.16 and pure noise stands in for z_600 (its missing
0.16 x is what the condition supplies). 600 was picked from {500, 600, 700, 999} on 64 *train* digits.

Where the denoiser contract ends: the student is a ControlledUNet, called model(x_t, t, cond, hint);
`with_hint(hint)` binds the condition and `dd.to_denoiser` makes the usual denoiser of it (so DDIM
runs it too). Its few-step sampler is not DDIM: consistency sampling re-noises with fresh noise.

Differences from the paper (a CPU-sized teaching run): pixel space, not a latent space; PE-CoDi (the
teacher frozen, the adapter trained) rather than the fully fine-tuned student; an EMA target with
mu = 0.95; the loss in noise space as above; lam = 0.3 (not tuned). `snr_floor` = gamma > 0 multiplies
L_cons by max(1, gamma / SNR_t) to train the top levels harder: with gamma = 0.1 the top levels took over
and in 1000 steps the adapter did not learn the condition (measurement PSNR 15 dB, the teacher's), so 0.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .._validate import check_choice, check_int, check_positive_int, check_real, check_tensor
from ..nets.control import ControlledUNet, ControlNet
from ..train.checkpoints import loss_curve
from ..train.fit import ema_update, fit

__all__ = ["FACTOR", "NULL", "lowres_operator", "hint_of", "codi_student", "timestep_grid", "x0_eps",
           "T_MAX", "codi_loss", "train_codi", "sample_levels", "codi_sample", "load_codi", "controlnet_solve", "dps_solve",
           "teacher_sample", "scores"]

FACTOR = 4          # 16x16 -> 4x4 average pooling
NULL = 10           # unet_digits' null class: the unconditional teacher
T_MAX = 600         # first level of few-step sampling (module doc: why not 999)


def lowres_operator(size: int = 16, factor: int = FACTOR):
    """The measurement A: x (B, 1, size, size) -> y (B, 1, size/f, size/f), the mean of each f x f block."""
    from ..inverse.operators import SuperResolution
    return SuperResolution(check_positive_int("factor", factor), size, "avgpool", channels=1)


def hint_of(y: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """The adapter's condition image from a measurement y: (B, 1, h, w) -> (B, 1, f h, f w), nearest
    upsampling (equal to nets.control.low_res(x) when y = A(x))."""
    check_tensor("y", y, ndim=4)
    return F.interpolate(y, scale_factor=check_positive_int("factor", factor), mode="nearest")


def codi_student(base="unet_digits", adapter: ControlNet | None = None) -> ControlledUNet:
    """The adapted student: the frozen base (a UNet or a shipped name) + a ControlNet with one hint
    channel, freshly zero-initialised unless `adapter` is given. At initialisation it computes exactly
    the base's output (every zero conv is 0): torch.equal(student(x, t, NULL, hint), base(x, t, NULL))."""
    from ..nets.control import _resolve_base
    base_net = _resolve_base(base)
    if adapter is None:
        adapter = ControlNet(base if isinstance(base, str) else base_net, 1)
    elif not isinstance(adapter, ControlNet):
        raise TypeError(f"adapter must be a ControlNet (or None for a fresh one), got {type(adapter).__name__}")
    return ControlledUNet(base_net, adapter)


def timestep_grid(N: int, T: int = 1000) -> torch.Tensor:
    """t_0 = 0 < t_1 < ... < t_N = T - 1, evenly spaced and rounded: (N + 1,) long."""
    N = check_int("N", N, lo=1)
    T = check_int("T", T, lo=N + 1)
    return torch.linspace(0, T - 1, N + 1).round().long()


def _col(v, x):
    return v.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def x0_eps(model, z: torch.Tensor, t: torch.Tensor, hint, alpha_bar: torch.Tensor, cond=NULL):
    """(x_hat, eps_hat) of an eps-predicting model(z, t, cond, hint) (hint None: the base alone).
    z: (B, C, H, W); t: (B,) long; alpha_bar: (B,) float64, the schedule's values at t."""
    y = torch.full((len(z),), cond, dtype=torch.long) if isinstance(cond, int) else cond
    eps = model(z, t, y) if hint is None else model(z, t, y, hint)
    a, s = _col(alpha_bar.sqrt(), z), _col((1 - alpha_bar).sqrt(), z)
    return (z - s * eps) / a, eps


def codi_loss(student: ControlledUNet, target: ControlledUNet, x: torch.Tensor, hint: torch.Tensor, schedule,
              grid: torch.Tensor, generator=None, lam: float = 0.3, ode: str = "self", snr_floor: float = 0.0):
    """One CoDi loss (module doc, steps 1-6) on clean images x: (B, 1, H, W) with conditions hint:
    (B, 1, H, W). student, target: ControlledUNets sharing the frozen base (target = EMA adapter).
    grid: `timestep_grid(N)`. Returns (loss, {"cons": float, "diff": float})."""
    check_choice("ode", ode, {"self", "teacher"})
    lam = check_real("lam", lam, lo=0)
    snr_floor = check_real("snr_floor", snr_floor, lo=0)
    ab_all = schedule.alpha_bar
    n = torch.randint(1, len(grid), (len(x),), generator=generator)                    # 1. levels
    t, s = grid[n], grid[n - 1]
    ab_t, ab_s = ab_all[t], ab_all[s]
    eps = torch.randn(x.shape, generator=generator).to(x)
    z_t = _col(ab_t.sqrt(), x) * x + _col((1 - ab_t).sqrt(), x) * eps
    with torch.no_grad():
        if ode == "teacher":                                                             # 2. PF-ODE step
            x_hat, e_hat = x0_eps(student.base, z_t, t, None, ab_t)
        else:
            x_hat, e_hat = x0_eps(target, z_t, t, hint, ab_t)
        z_s = _col(ab_s.sqrt(), x) * x_hat + _col((1 - ab_s).sqrt(), x) * e_hat
        x_target = x0_eps(target, z_s, s, hint, ab_s)[0]                                # 3. x^-
        eps_target = (z_t - _col(ab_t.sqrt(), x) * x_target) / _col((1 - ab_t).sqrt(), x)  # 4. eps^-
    e_theta = x0_eps(student, z_t, t, hint, ab_t)[1]
    w = _col((snr_floor * (1 - ab_t) / ab_t).clamp_min(1.0), x)                         # max(1, gamma / SNR_t)
    cons = (w * (e_theta - eps_target).pow(2)).mean()
    diff = (e_theta - eps).pow(2).mean()                                                 # 5.
    return cons + lam * diff, {"cons": cons.item(), "diff": diff.item()}                 # 6.


def train_codi(base: str = "unet_digits", steps: int = 1200, batch_size: int = 32, N: int = 20, lam: float = 0.3,
               mu: float = 0.95, lr: float = 1e-3, ode: str = "self", snr_floor: float = 0.0, seed: int = 0,
               progress: bool = True):
    """Train the CoDi adapter on the train digits (module doc). Returns (ema adapter, log, manifest
    dict for save_checkpoint): log = {"loss", "cons", "diff"} lists, one entry per step."""
    from ..data.images import digits
    from ..schedules import get_schedule
    from ..train import checkpoints as ck
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    mu = check_real("mu", mu, lo=0)
    if mu >= 1:
        raise ValueError(f"mu must lie in [0, 1), got {mu}")
    torch.manual_seed(check_int("seed", seed, lo=0))
    g = torch.Generator().manual_seed(seed + 1)
    student = codi_student(ck.pretrained(base))
    student.controlnet.base_name = base
    target = ControlledUNet(student.base, copy.deepcopy(student.controlnet).requires_grad_(False))
    x_all, _ = digits(16, "train")
    schedule, grid, op = get_schedule("linear", 1000), timestep_grid(N), lowres_operator()
    log = {"loss": [], "cons": [], "diff": []}

    def batch_loss():
        if log["loss"]:
            ema_update(target.controlnet, student.controlnet, mu)
        x = x_all[torch.randint(0, len(x_all), (batch_size,), generator=g)]
        loss, parts = codi_loss(student, target, x, hint_of(op.A(x)), schedule, grid, g, lam, ode, snr_floor)
        log["loss"].append(loss.item())
        log["cons"].append(parts["cons"])
        log["diff"].append(parts["diff"])
        return loss

    ema, _ = fit(student.controlnet, batch_loss, steps, lr, ema=0.99, progress=progress, desc="codi")
    curve = {k: loss_curve(v, 50) for k, v in log.items()}
    manifest = {"model": {"class": "diffedu.nets.control:ControlNet", "kwargs": {"base_unet": base, "hint_channels": 1}},
                "base": base, "method": "CoDi (PE-CoDi: frozen base, zero-initialised adapter)",
                "condition": f"nearest-upsampled {FACTOR}x average-pooled digit (B, 1, 16, 16)",
                "data": {"name": "digits", "kw": {"size": 16, "split": "train"}},
                "schedule": {"name": "linear", "T": 1000}, "prediction": "eps", "null_label": NULL, "seed": seed,
                "steps": steps, "batch_size": batch_size, "N": N, "lam": lam, "mu": mu, "lr": lr, "ode": ode, "snr_floor": snr_floor,
                "final_loss": round(sum(log["loss"][-100:]) / len(log["loss"][-100:]), 5), "loss_curve": curve}
    return ema, log, manifest


def sample_levels(steps: int, t_max: int = T_MAX) -> list[int]:
    """The levels of `steps`-step consistency sampling: t_max first, then evenly spaced down, e.g.
    4 -> [600, 450, 300, 150]; t_max = 999 gives [999, 749, 500, 250]."""
    steps = check_int("steps", steps, lo=1)
    t_max = check_int("t_max", t_max, lo=1)
    if steps > t_max:
        raise ValueError(f"steps must be at most t_max = {t_max}, got {steps}")
    return [int(round(t_max * (1 - k / steps))) for k in range(steps)]


@torch.no_grad()
def codi_sample(student: ControlledUNet, hint: torch.Tensor, steps: int = 4, schedule=None, generator=None,
                x_T: torch.Tensor | None = None, clip: bool = True, t_max: int = T_MAX) -> torch.Tensor:
    """Few-step CoDi samples (module doc: multistep consistency sampling from level t_max). hint: (B, 1, H, W)
    conditions (one sample per row; repeat rows for several samples); steps: network calls (1-4 as trained,
    more allowed). x_T: (B, 1, H, W) start (default N(0, I) from `generator`). Returns (B, 1, H, W)."""
    if not isinstance(student, ControlledUNet):
        raise TypeError(f"student must be a ControlledUNet (codi_student / load_codi), got {type(student).__name__}")
    check_tensor("hint", hint, ndim=4, finite=True)
    if schedule is None:
        from ..schedules import get_schedule
        schedule = get_schedule("linear", 1000)
    levels = sample_levels(steps, t_max)
    if levels[0] >= len(schedule.alpha_bar):
        raise ValueError(f"t_max = {t_max} is beyond the schedule's last step {len(schedule.alpha_bar) - 1}")
    shape = (len(hint), student.base.in_channels, hint.shape[2], hint.shape[3])
    z = torch.randn(shape, generator=generator) if x_T is None else check_tensor("x_T", x_T, ndim=4)
    if tuple(z.shape) != shape:
        raise ValueError(f"x_T must have shape {shape} to match hint, got {tuple(z.shape)}")
    ab_all = schedule.alpha_bar
    x = None
    for k, t in enumerate(levels):
        ab = ab_all[t].reshape(1).expand(len(z))
        if k:
            z = ab[0].sqrt().to(z) * x + (1 - ab[0]).sqrt().to(z) * torch.randn(shape, generator=generator)
        x = x0_eps(student, z, torch.full((len(z),), t), hint, ab)[0]
        if clip:
            x = x.clamp(-1, 1)
    return x


def load_codi(name: str = "distill/digits/codi_lowres", device=None) -> ControlledUNet:
    """The shipped CoDi student: its adapter (the checkpoint) with the frozen base its manifest names."""
    from ..nets.control import pretrained_controlled
    return pretrained_controlled(name, device=device)


# ----------------------------------------------------------------------------- baselines and scores
def teacher_sample(hint: torch.Tensor, steps: int = 4, generator=None) -> torch.Tensor:
    """The zero-initialised student (= the unconditional teacher, which ignores the hint) run by
    `codi_sample`: what CoDi starts from. hint: (B, 1, H, W) -> (B, 1, H, W)."""
    return codi_sample(codi_student("unet_digits").eval(), hint, steps, generator=generator)


@torch.no_grad()
def controlnet_solve(y: torch.Tensor, steps: int = 50, generator=None, name: str = "control/controlnet_digits"):
    """The shipped many-step ControlNet (chapter 12, trained with the denoising loss only, low-res among
    its controls) with the null class, by DDIM: y (B, 1, h, w) measurements -> x (B, 1, 4h, 4w)."""
    from ..denoiser import to_denoiser
    from ..nets.control import CONTROLS, pretrained_controlled
    from ..samplers import ddim
    from ..schedules import get_schedule
    check_tensor("y", y, ndim=4)
    up = hint_of(y)
    hint = torch.cat([up if c == "low_res" else torch.zeros_like(up) for c in CONTROLS], dim=1)
    schedule = get_schedule("linear", 1000)
    D = to_denoiser(pretrained_controlled(name).with_hint(hint), schedule, clip=1.0)
    x_T = torch.randn(up.shape, generator=generator)
    return ddim(D, x_T, schedule, check_positive_int("steps", steps), generator=generator).clamp(-1, 1)


def dps_solve(y: torch.Tensor, steps: int = 100, zeta: float = 1.0, generator=None):
    """Chapter 09's DPS with the unconditional teacher (unet_digits, null class) for y = A(x), A =
    `lowres_operator()`: y (B, 1, h, w) -> x (B, 1, 4h, 4w). `steps` network calls (each also a backward)."""
    from ..train.checkpoints import pretrained_denoiser
    from ..inverse.posterior import dps
    from ..schedules import get_schedule
    check_tensor("y", y, ndim=4)
    D = pretrained_denoiser("unet_digits", cond=NULL)
    op = lowres_operator(y.shape[2] * FACTOR)
    return dps(y, op, D, get_schedule("linear", 1000), zeta=zeta, steps=steps, generator=generator).clamp(-1, 1)


@torch.no_grad()
def scores(samples: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor, k: int = 1) -> dict:
    """Scores of restorations of the 4x-pooled `truth`: (B, 1, H, W), `k` samples per truth stacked as
    samples: (k B, 1, H, W) (sample j of truth i in row j B + i); labels: (B,) the digits.
        "meas PSNR"  PSNR (dB) of A(sample) against y = A(truth) (range 2): consistency with the measurement
        "PSNR"       PSNR (dB) of the sample against the truth
        "accuracy"   the digit classifier's accuracy on the samples (blind/classifier_digits)
        "std"        per-pixel std over the k samples of one truth, averaged (0 when k = 1)
    Returns floats."""
    from ..inverse.blind.perceptual import classifier
    from ..metrics import psnr
    check_tensor("samples", samples, ndim=4)
    check_tensor("truth", truth, ndim=4)
    B = len(truth)
    if len(samples) != k * B:
        raise ValueError(f"samples must hold k = {k} samples per truth ({k * B} rows), got {len(samples)}")
    op = lowres_operator(truth.shape[-1])
    ref = truth.repeat(k, 1, 1, 1)
    clf = classifier()
    pred = clf(samples.clamp(-1, 1), torch.zeros(len(samples), dtype=torch.long)).argmax(1)
    std = samples.reshape(k, B, -1).std(0, unbiased=True).mean().item() if k > 1 else 0.0
    return {"meas PSNR": psnr(op.A(samples), op.A(ref)).mean().item(), "PSNR": psnr(samples, ref).mean().item(),
            "accuracy": (pred == labels.repeat(k)).float().mean().item(), "std": std}


def main(argv=None) -> int:
    """`python -m diffedu.distill.codi [--steps ...] [--out PATH]`: train the adapter, score it on 64 test
    digits (scores at 1, 2, 4 calls), save it with its manifest and a PNG of samples beside it."""
    import argparse
    import sys
    import time
    from pathlib import Path

    from ..data.images import digits
    from ..train.checkpoints import CHECKPOINTS, save_checkpoint
    p = argparse.ArgumentParser(prog="python -m diffedu.distill.codi", description=main.__doc__)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--N", type=int, default=20)
    p.add_argument("--lam", type=float, default=0.3)
    p.add_argument("--mu", type=float, default=0.95)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ode", default="self", choices=["self", "teacher"])
    p.add_argument("--snr-floor", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(CHECKPOINTS / "distill" / "digits" / "codi_lowres.safetensors"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.process_time()
    ema, _, manifest = train_codi(steps=a.steps, batch_size=a.batch_size, N=a.N, lam=a.lam, mu=a.mu, lr=a.lr, ode=a.ode,
                                  snr_floor=a.snr_floor, seed=a.seed, progress=sys.stderr.isatty())
    manifest["train_cpu_seconds"] = round(time.process_time() - t0, 1)
    args = list(argv if argv is not None else sys.argv[1:])
    if "--out" in args and Path(a.out).resolve() == (CHECKPOINTS / "distill" / "digits" / "codi_lowres.safetensors").resolve():
        del args[args.index("--out"):args.index("--out") + 2]          # the default place: record the plain command
    manifest["command"] = " ".join(["python -m diffedu.distill.codi"] + args)
    x, labels = digits(16, "test")
    x, labels = x[:64], labels[:64]
    student = codi_student("unet_digits", copy.deepcopy(ema)).eval()
    hint, quality, grids = hint_of(lowres_operator().A(x)), {}, [x[:16]]
    for steps in (1, 2, 4):
        s = codi_sample(student, hint, steps, generator=torch.Generator().manual_seed(0))
        quality[f"{steps} calls"] = {k: round(v, 3) for k, v in scores(s, x, labels).items() if k != "std"}
        grids.append(s[:16])
    manifest["quality"] = {"test digits": 64, "seed": 0, **quality}
    out = Path(a.out)
    save_checkpoint(ema, out, manifest)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 2.4))
    ax.imshow(torch.cat([torch.cat(list(r[:, 0]), 1) for r in [hint[:16]] + grids], 0), cmap="gray", vmin=-1, vmax=1)
    ax.set_axis_off()
    ax.set_title("rows: condition (4x4 means), truth, CoDi 1, 2, 4 calls", fontsize=8)
    fig.savefig(out.with_suffix(".png"), dpi=100, bbox_inches="tight")
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB); {manifest['quality']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
