"""Progressive distillation of an image teacher on its own discrete schedule (chapter 13b):
the shipped class-conditional `unet_digits` (eps-prediction, linear schedule, T = 1000) taught to
U-Net students that take 4, 2 or 1 DDIM steps, and the proxy scores that judge them.

Grid. The N-step sampler of the teacher is DDIM on `schedule.respace(N, "trailing")`: entries
k = 0..N-1 with timesteps tau_k (tau_{N-1} = 999, the noisiest) and levels
a_k = sqrt(alpha_bar_k), s_k = sqrt(1 - alpha_bar_k); after entry 0 comes the clean level
(a = 1, s = 0). For T = 1000 and N a power of two <= 64 the trailing grids nest: entry j of the
N/2 grid is entry 2j + 1 of the N grid (tau = round(T - (N/2 - 1 - j) 2T/N) - 1), so one student
step j -> j - 1 spans exactly two teacher steps 2j + 1 -> 2j -> 2j - 1.

Algorithm (Salimans & Ho 2022, Algorithm 2, on that grid; the formulas are progressive.py's
`ddim_move_as` / `pd_target_as`):
    1. x, y from the train digits; a tenth of the labels become the null label 10 (for teacher and
       student alike), so the student keeps the unconditional model of classifier-free guidance.
    2. j ~ U{0..N/2 - 1}; t = entry 2j + 1, t' = entry 2j, t'' = entry 2j - 1 (clean when j = 0).
    3. z_t = a_t x + s_t eps, eps ~ N(0, I).
    4. teacher (no grad, x0 clipped to [-1, 1] as when it samples): z_t' = DDIM(z_t), z_t'' = DDIM(z_t').
    5. target x~ = (z_t'' - (s_t''/s_t) z_t) / (a_t'' - (s_t''/s_t) a_t): ONE DDIM step from x~ lands on z_t''.
    6. student x_hat = a_t z_t - s_t v_hat(z_t, t, y) (v-parameterisation, section 4 of the paper).
    7. loss = max(SNR_t, 1) mean (x_hat - x~)^2 ("truncated SNR" weighting); Adam, cosine decay, EMA.
    The first student starts from the teacher's weights (its output read as v instead of eps:
    equal at low noise, different at high noise, which stage one has to learn); each next
    student starts from the previous one, which is then its teacher.

Where the contract ends. A student is an ordinary NetworkDenoiser (a v-predicting UNet on the
teacher's schedule: `pretrained_denoiser("distill/digits/pd_digits_4")`), but its x0_hat is the x~ of
step 5, not E[x0 | x_t]: it is only meaningful at the entries of its own grid, followed by one
DDIM step to the next entry. SNR = 0: the linear schedule ends at alpha_bar = 4.0e-5, not 0 (Lin
et al. 2024); teacher and students all start from pure noise there, a mismatch they share.

Scores (a proxy for FID, whose Inception network knows nothing of 16 x 16 digits): the Frechet
distance (FD) in the features of the shipped digit classifier (inverse.blind.perceptual), of
n = 360 samples to the 1,437 train digits; its floor is the FD of the 360 held-out test digits to
the same train digits. The samples ask for the test set's labels, and `class_accuracy` is the
classifier's accuracy on them (does the sample show the digit it was asked for?).

    python -m diffedu.distill.images --steps 500 250 250 400 400 600   (bash scripts/train_distill.sh digits)
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

from .._validate import check_int, check_positive_int, check_real, check_tensor
from ..denoiser import NetworkDenoiser
from ..train.fit import fit
from .progressive import check_steps, ddim_move_as, pd_target_as

__all__ = ["TEACHER", "NULL", "N_EVAL", "digit_teacher", "grid", "bind", "ddim_digits", "new_student", "pd_image_loss",
           "distill_stage", "progressive_digits", "reference", "eval_noise", "fd_proxy", "class_accuracy", "score",
           "digit_table", "load_digit_student", "main"]

TEACHER = "unet_digits"
NULL = 10                 # the null label of unet_digits (classifier-free guidance)
N_EVAL = 360              # the size of the held-out test split: the FD floor needs the same n


def digit_teacher() -> NetworkDenoiser:
    """The shipped teacher: unet_digits as a Denoiser (eps-prediction, x0 clipped to [-1, 1])."""
    from ..train.checkpoints import pretrained_denoiser
    return pretrained_denoiser(TEACHER)


def grid(schedule, N: int):
    """(timesteps (N,) long, alpha_bar (N,) float64) of the N-step trailing grid, entry 0 least noisy."""
    N = check_steps(N)
    if N > len(schedule):
        raise ValueError(f"N={N} steps exceed the schedule's {len(schedule)} entries")
    r = schedule.respace(N, "trailing")
    return r.timesteps.long(), r.alpha_bar.double()


def bind(denoiser: NetworkDenoiser, y) -> NetworkDenoiser:
    """The same network denoiser with the labels y: (B,) bound as its condition."""
    if not isinstance(denoiser, NetworkDenoiser):
        raise TypeError(f"denoiser must be a NetworkDenoiser (e.g. digit_teacher()), got {type(denoiser).__name__}")
    return NetworkDenoiser(denoiser.model, denoiser.schedule, denoiser.prediction, cond=y, clip=denoiser.clip)


def ddim_digits(denoiser: NetworkDenoiser, z: torch.Tensor, y, N: int) -> torch.Tensor:
    """N deterministic DDIM steps (N network calls) on the trailing grid from pure noise z: (B, 1, 16, 16)
    with labels y: (B,) (10: unconditional). The teacher at any N, a student at the N it was distilled for."""
    check_tensor("z", z, ndim=4)
    N = check_positive_int("N (steps)", N)
    from ..samplers import ddim
    with torch.no_grad():
        return ddim(bind(denoiser, y), z, denoiser.schedule.respace(N, "trailing"))


def new_student(teacher: NetworkDenoiser) -> NetworkDenoiser:
    """A v-predicting copy of the teacher's network (same weights; the output is read as v)."""
    model = copy.deepcopy(teacher.model)
    model.prediction = "v"
    return NetworkDenoiser(model.eval().requires_grad_(False), teacher.schedule, "v", clip=teacher.clip)


def _levels(ab):
    return ab.sqrt(), (1 - ab).sqrt()


def pd_image_loss(student, teacher: NetworkDenoiser, x, y, N: int, generator=None):
    """One estimate of the PD loss (module doc, steps 2-7) for a student network `student`
    (model(z, t, y, force_drop_ids) -> v_hat; it gets force_drop_ids = 0, so a UNet in training mode
    never drops labels at random: step 1 chose the null labels) distilling N teacher steps into N/2.
    x: (B, 1, H, W); y: (B,) labels (10: null)."""
    ts, ab = grid(teacher.schedule, N)
    ts, ab = ts.to(x.device), torch.cat([torch.ones(1, dtype=torch.float64), ab])   # ab[k + 1] is entry k; ab[0]: clean
    B = len(x)
    j = torch.randint(0, N // 2, (B,), generator=generator)
    k = 2 * j + 1                                                   # t = entry k, t' = k - 1, t'' = k - 2 (or clean)
    a_t, s_t = _levels(ab[k + 1])
    a_p, s_p = _levels(ab[k])
    a_pp, s_pp = _levels(ab[k - 1])
    eps = torch.randn(x.shape, generator=generator).to(x)
    col = (-1,) + (1,) * (x.ndim - 1)
    z_t = a_t.to(x).view(col) * x + s_t.to(x).view(col) * eps
    with torch.no_grad():
        x0 = teacher.x0_eps(z_t, ts[k], cond=y, alpha_bar=ab[k + 1].to(x).view(col))[0]
        z_p = ddim_move_as(z_t, x0, a_t, s_t, a_p, s_p)
        x0 = teacher.x0_eps(z_p, ts[k - 1], cond=y, alpha_bar=ab[k].to(x).view(col))[0]
        z_pp = ddim_move_as(z_p, x0, a_p, s_p, a_pp, s_pp)            # = x0 when t'' is clean (a 1, s 0)
        target = pd_target_as(z_t, z_pp, a_t, s_t, a_pp, s_pp)
    v = student(z_t, ts[k], y, force_drop_ids=torch.zeros(B, dtype=torch.long, device=x.device))
    x_hat = a_t.to(x).view(col) * z_t - s_t.to(x).view(col) * v
    weight = torch.clamp((a_t / s_t) ** 2, min=1.0).to(x).view(col)       # truncated SNR: max(SNR, 1)
    return (weight * (x_hat - target) ** 2).mean()


def _digit_batches(seed: int, null_p: float = 0.1):
    from ..data.images import digits
    xs, ys = digits(16, "train")
    g = torch.Generator().manual_seed(seed)

    def sample(n):
        i = torch.randint(0, len(xs), (n,), generator=g)
        y = torch.where(torch.rand(n, generator=g) < null_p, torch.full((n,), NULL), ys[i])
        return xs[i], y
    return sample, g


def distill_stage(teacher: NetworkDenoiser, N: int, steps: int = 600, batch_size: int = 64, lr: float = 3e-4,
                  seed: int = 0, student: NetworkDenoiser | None = None, progress: bool = False):
    """One halving N -> N/2: a student (default: new_student(teacher)) trained with pd_image_loss.
    Returns (the EMA student as a NetworkDenoiser, losses)."""
    if not isinstance(teacher, NetworkDenoiser):
        raise TypeError(f"teacher must be a NetworkDenoiser (digit_teacher() or a student), got {type(teacher).__name__}")
    N = check_steps(N)
    if N < 2:
        raise ValueError(f"N must be at least 2 (a stage halves it), got {N}")
    steps, batch_size = check_positive_int("steps", steps), check_positive_int("batch_size", batch_size)
    check_real("lr", lr, lo=0, lo_open=True)
    seed = check_int("seed", seed, lo=0)
    student = student or new_student(teacher)
    net = copy.deepcopy(student.model).requires_grad_(True)
    sample, g = _digit_batches(seed)
    torch.manual_seed(seed)

    def batch_loss():
        x, y = sample(batch_size)
        return pd_image_loss(net, teacher, x, y, N, g)
    ema, losses = fit(net, batch_loss, steps, lr, ema=0.99, progress=progress, desc=f"PD {N} -> {N // 2}")
    return NetworkDenoiser(ema.eval().requires_grad_(False), teacher.schedule, "v", clip=teacher.clip), losses


def progressive_digits(N: int = 64, to: int = 4, steps=(500, 250, 250, 400), log=None, **kw):
    """Halvings N -> N/2 -> ... -> to from digit_teacher(); steps: one count per stage; log(n, student,
    losses, cpu_seconds) after each stage.
    Returns ({N/2: student, ..., to: student}, {N/2: losses, ...}, {N/2: CPU seconds, ...})."""
    N, to = check_steps(N), check_steps(to)
    stages = (N // to).bit_length() - 1
    if to >= N or len(steps) != stages:
        raise ValueError(f"need to < N and one step count per stage: N={N}, to={to}, steps={steps} ({stages} stages)")
    teacher, students, losses, secs = digit_teacher(), {}, {}, {}
    current = None
    for n_steps in steps:
        t0 = time.process_time()
        current, losses[N // 2] = distill_stage(teacher, N, n_steps, student=current, **kw)
        secs[N // 2] = time.process_time() - t0
        if log is not None:
            log(N // 2, current, losses[N // 2], secs[N // 2])
        students[N // 2], teacher, N = current, current, N // 2
    return students, losses, secs


# -- scores ---------------------------------------------------------------------------------
def reference():
    """(train features (1437, F), test digits (360, 1, 16, 16), test labels (360,), FD floor)."""
    from ..data.images import digits
    from ..inverse.blind.perceptual import features, frechet_distance
    xtr, _ = digits(16, "train")
    xte, yte = digits(16, "test")
    with torch.no_grad():
        ftr = features(xtr)
    return ftr, xte, yte, frechet_distance(xte, xtr)


def eval_noise(seed: int = 0, n: int = N_EVAL) -> torch.Tensor:
    """The fixed starting noise (n, 1, 16, 16) shared by every row of the table."""
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(1000 + check_int("seed", seed, lo=0)))


def fd_proxy(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Frechet distance in the digit classifier's features (perceptual.frechet_distance) of samples
    x: (N, 1, 16, 16) to ref: (M, 1, 16, 16) images or (M, F) precomputed features."""
    from ..inverse.blind.perceptual import features, frechet_distance
    check_tensor("x", x, ndim=4)
    if ref.ndim == 4:
        return frechet_distance(x, ref)
    check_tensor("ref", ref, ndim=2)
    with torch.no_grad():                               # the same formula, on features given once
        fx = features(x).double()
    fr = ref.double()
    from ..inverse.blind.perceptual import _sqrtm_psd
    Sx, Sr = torch.cov(fx.T), torch.cov(fr.T)
    r = _sqrtm_psd(Sr)
    return float((fx.mean(0) - fr.mean(0)).pow(2).sum() + torch.trace(Sx + Sr - 2 * _sqrtm_psd(r @ Sx @ r)))


def class_accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples x: (N, 1, 16, 16) that the shipped digit classifier reads as their label y: (N,)."""
    from ..inverse.blind.perceptual import classifier
    check_tensor("x", x, ndim=4)
    with torch.no_grad():
        pred = classifier()(x.clamp(-1, 1), torch.zeros(len(x), dtype=torch.long)).argmax(1)
    return float((pred == torch.as_tensor(y)).float().mean())


def score(x, y, ref_features) -> dict:
    """{'fd': FD proxy to the train digits, 'acc': classifier accuracy on the asked labels}."""
    return {"fd": round(fd_proxy(x, ref_features), 4), "acc": round(class_accuracy(x, y), 4)}


def digit_table(students: dict, seeds=(0, 1), teacher_calls=(1, 2, 4, 8, 64), long_seeds=(0,), long_calls: int = 64):
    """Rows {method, calls, seed, fd, acc, ms}: the teacher's DDIM at each of teacher_calls and each
    student {steps: NetworkDenoiser} at its steps, from the same noise eval_noise(seed) and the test
    labels, for every seed (the `long_calls` row only for long_seeds: it is the slow one). ms: CPU
    milliseconds per sample (process time, one thread, batch of 360). Also returns the FD floor."""
    ftr, _, yte, floor = reference()
    teacher, rows = digit_teacher(), []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in seeds:
            z = eval_noise(seed)
            runs = [("teacher DDIM", teacher, c) for c in teacher_calls if c != long_calls or seed in long_seeds]
            for n, st in sorted(students.items(), reverse=True):
                runs.append(("progressive student", st, n))
            for method, model, calls in runs:
                t0 = time.process_time()
                x = ddim_digits(model, z, yte, calls)
                ms = 1e3 * (time.process_time() - t0) / len(z)
                rows.append({"method": method, "calls": calls, "seed": seed, **score(x, yte, ftr), "ms": round(ms, 2)})
    finally:
        torch.set_num_threads(threads)
    return rows, floor


def load_digit_student(name: str) -> NetworkDenoiser:
    """A shipped digit student ("pd_digits_4", "pd_digits_1") as a NetworkDenoiser on the teacher's schedule
    (diffedu/checkpoints/distill/digits; its manifest as .manifest)."""
    from ..train.checkpoints import pretrained_denoiser
    return pretrained_denoiser(f"distill/digits/{name}")


# -- the training command ---------------------------------------------------------------------
def _png(students, teacher, path, yte):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    z, y = eval_noise(0, 10), yte.new_tensor(list(range(10)))
    rows = [("teacher 64", ddim_digits(teacher, z, y, 64))] + [(f"PD {n}", ddim_digits(s, z, y, n)) for n, s in students]
    fig, axes = plt.subplots(len(rows), 1, figsize=(5, 0.7 * len(rows)), dpi=80)
    for ax, (name, x) in zip(axes, rows):
        ax.imshow(torch.cat(list(x[:, 0].clamp(-1, 1)), 1), cmap="gray")
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    from ..train.checkpoints import loss_curve, save_checkpoint
    from .train import STUDENTS_DIR
    out = STUDENTS_DIR / "digits"             # a folder of its own: chapter 13's loaders list distill/*.safetensors
    out.mkdir(parents=True, exist_ok=True)
    p = argparse.ArgumentParser(prog="python -m diffedu.distill.images", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[500, 250, 250, 400, 400, 600], help="per stage, 64 -> 32 first")
    p.add_argument("--ship", type=int, nargs="+", default=[4, 1], help="student step counts to save")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", default=None, help="a folder to also keep every stage's weights in (torch.save)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    command = "python -m diffedu.distill.images " + " ".join(sys.argv[1:] if argv is None else argv)
    to = 64 >> len(a.steps)
    def log(n, st, loss, sec):
        print(f"stage -> {n} steps: final loss {sum(loss[-50:]) / min(50, len(loss)):.4f}, {sec:.0f} CPU s", flush=True)
        if a.keep:
            from pathlib import Path
            Path(a.keep).mkdir(parents=True, exist_ok=True)
            torch.save(st.model.state_dict(), Path(a.keep) / f"pd_digits_{n}.pt")
    students, losses, secs = progressive_digits(64, to, a.steps, log=log, batch_size=a.batch_size, lr=a.lr,
                                                seed=a.seed, progress=False)
    ftr, _, yte, floor = reference()
    teacher = digit_teacher()
    for n in sorted(students, reverse=True):
        q = {s: score(ddim_digits(students[n], eval_noise(s), yte, n), yte, ftr) for s in (0, 1)}
        print(f"PD {n} steps: {q} ({secs[n]:.0f} CPU s)", flush=True)
    for n in a.ship:
        st = students[n]
        q = {f"seed{s}": score(ddim_digits(st, eval_noise(s), yte, n), yte, ftr) for s in (0, 1)}
        chain = [m for m in sorted(students, reverse=True) if m >= n]
        curve = loss_curve(losses[n], 200)
        manifest = {"model": {"factory": "diffedu.nets.unet:unet_tiny", "kwargs": {"num_classes": 10, "prediction": "v"}},
                    "schedule": {"name": "linear", "T": 1000}, "command": command,
                    "data": {"name": "digits", "size": 16, "split": "train", "teacher": TEACHER},
                    "seed": a.seed, "steps": a.steps[: len(chain)], "batch_size": a.batch_size, "lr": a.lr,
                    "stages": " -> ".join(str(m) for m in [64] + chain), "sampler_steps": n,
                    "final_loss": sum(losses[n][-100:]) / min(100, len(losses[n])), "loss_curve": curve,
                    "stage_cpu_seconds": {str(m): round(secs[m], 1) for m in chain},
                    "quality": dict(q, fd_floor=round(floor, 4), n=N_EVAL, calls=n, figure=f"pd_digits_{n}.png")}
        save_checkpoint(st.model, out / f"pd_digits_{n}.safetensors", manifest)
        _png([(m, students[m]) for m in chain if m in a.ship and m >= n], teacher, out / f"pd_digits_{n}.png", yte)
    return 0


if __name__ == "__main__":
    sys.exit(main())
