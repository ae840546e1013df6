"""`python -m diffedu.distill METHOD`: train the chapter-13 students on the 2D mixture
(data.toy.toy_gmm, whose exact denoiser is the teacher), save them with manifests in
diffedu/checkpoints/distill, and draw a quality figure beside each.

    python -m diffedu.distill pd     progressive students with 8, 4, 2 and 1 steps (from 64)
    python -m diffedu.distill cd     consistency distillation (Heun teacher on 18 Karras levels)
    python -m diffedu.distill ct     consistency training (N(k) curriculum, adaptive EMA)
    python -m diffedu.distill ict    improved consistency training
    python -m diffedu.distill gd     guidance distillation: the w-conditioned student, then 4, 2, 1 steps
    python -m diffedu.distill add    adversarial diffusion distillation of the 1-step progressive student
                                     (and, for contrast, the same run without the adversary); needs pd first
    python -m diffedu.distill pnp    plug-and-play distillation: a class-conditional base trained on the
                                     mixture, a guide beside it (frozen base), and a fine-tuned copy of
                                     the base on a shifted mixture (the guide's transfer test)

Quality in each manifest: sliced Wasserstein (SW) of 4000 samples to 4000 fresh mixture samples,
beside the floor (SW between two independent mixture samples of that size).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..train.checkpoints import CHECKPOINTS, load_model, loss_curve, model_spec, read_manifest, save_checkpoint
from .common import LevelMLP
from .consistency import ConsistencyModel
from .plugplay import GuideNet

__all__ = ["STUDENTS_DIR", "main", "load_student", "shipped_students", "reference", "evaluate"]

STUDENTS_DIR = CHECKPOINTS / "distill"
N_EVAL = 4000


def shipped_students() -> list[str]:
    return sorted(p.stem for p in STUDENTS_DIR.glob("*.safetensors"))


def load_student(name: str):
    """A shipped student by name (e.g. "pd_gmm_4"), in eval mode; guidance students get .w_range."""
    path = Path(name) if str(name).endswith(".safetensors") else STUDENTS_DIR / f"{name}.safetensors"
    if not path.exists():
        raise ValueError(f"unknown student {name!r}; shipped: {shipped_students()} "
                         f"(train them with bash scripts/train_distill.sh)")
    m = read_manifest(path)
    # the checked loader: allow-list, kwargs validated, shapes compared with the file on the meta device
    model = load_model(path)
    if not isinstance(model, (LevelMLP, ConsistencyModel, GuideNet)):
        raise ValueError(f"{path.name} holds a {type(model).__name__}, not a distillation student "
                         f"(LevelMLP, ConsistencyModel or GuideNet)")
    model.eval().requires_grad_(False)
    if "w_range" in m:
        model.w_range = tuple(m["w_range"])
    model.manifest = m
    return model


def reference(n: int = N_EVAL):
    """(gmm, reference samples, floor SW) of the chapter's scoring."""
    from ..data.toy import toy_gmm
    from .common import sw_to
    gmm = toy_gmm()
    ref = gmm.sample(n, torch.Generator().manual_seed(1))
    return gmm, ref, sw_to(gmm.sample(n, torch.Generator().manual_seed(2)), ref)


def noise(n: int = N_EVAL, seed: int = 3):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def evaluate(x, ref) -> float:
    from .common import sw_to
    return round(sw_to(x, ref), 4)


def _figure(x, ref, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=80)
    ax.scatter(*ref[:1500].T, s=1, c="0.7", label="data")
    ax.scatter(*x[:1500].T, s=1, c="C0", label="student")
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), title=title)
    ax.title.set_size(8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _save(model, name, spec, command, steps, losses, quality, seconds, x, ref, extra=None):
    STUDENTS_DIR.mkdir(parents=True, exist_ok=True)
    curve = loss_curve(losses, 200)
    manifest = {"model": spec, "command": command, "data": {"name": "toy_gmm", "teacher": "exact GaussianMixture"},
                "seed": 0, "steps": steps, "final_loss": sum(losses[-100:]) / min(100, len(losses)),
                "loss_curve": curve, "parameters": sum(p.numel() for p in model.parameters()),
                "quality": dict(quality, figure=f"{name}.png"), "train_seconds": round(seconds, 1), **(extra or {})}
    save_checkpoint(model, STUDENTS_DIR / f"{name}.safetensors", manifest)
    _figure(x, ref, STUDENTS_DIR / f"{name}.png", f"{name}: SW {quality['sw']:.3f} (floor {quality['sw_floor']:.3f})")
    print(f"{name}: {quality} ({seconds:.0f} s)", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m diffedu.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method", choices=["pd", "cd", "ct", "ict", "gd", "add", "pnp"])
    p.add_argument("--steps", type=int, default=None, help="training steps (per stage for pd / gd stage two)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--s0", type=int, default=None, help="ct / ict: first grid size of the curriculum (papers' default)")
    p.add_argument("--s1", type=int, default=None, help="ct / ict: last grid size of the curriculum (papers' default)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    command = "python -m diffedu.distill " + " ".join(sys.argv[1:] if argv is None else argv)
    gmm, ref, floor = reference()
    z = noise()
    t0 = time.time()
    if a.method == "pd":
        from .progressive import pd_sample, progressive_distill
        steps = a.steps or 1000
        students, losses = progressive_distill(gmm, gmm, N=64, to=1, steps=steps, batch_size=a.batch_size,
                                               seed=a.seed, init_steps=2 * steps)
        secs = time.time() - t0
        for N in (8, 4, 2, 1):
            s = students[N]
            with torch.no_grad():
                x = pd_sample(s, z, N)
            _save(s, f"pd_gmm_{N}", model_spec(s, dim=2, hidden=128, depth=3), command, steps, losses[N],
                  {"sw": evaluate(x, ref), "sw_floor": round(floor, 4), "calls": N, "n": N_EVAL}, secs, x, ref,
                  {"stages": "64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1", "sampler_steps": N})
    elif a.method in ("cd", "ct", "ict"):
        from .consistency import cm_sample, consistency_distill, consistency_train
        steps = a.steps or 3000
        if a.method == "cd":
            m, losses = consistency_distill(gmm, gmm, steps=steps, batch_size=a.batch_size, seed=a.seed)
        else:
            m, losses = consistency_train(gmm, a.method, steps=steps, batch_size=a.batch_size, seed=a.seed,
                                          s0=a.s0, s1=a.s1)
        secs = time.time() - t0
        x = cm_sample(m, z)
        x2 = cm_sample(m, z, (80.0, 0.8), torch.Generator().manual_seed(4))
        _save(m, f"cm_gmm_{a.method}", model_spec(m, sigma_d=m.sigma_d, dim=2, hidden=128, depth=3), command, steps,
              losses, {"sw": evaluate(x, ref), "sw_2step": evaluate(x2, ref), "sw_floor": round(floor, 4), "calls": 1,
                       "n": N_EVAL}, secs, x, ref)
    elif a.method == "add":
        from .adversarial import adversarial_distill, mode_coverage, one_step
        steps = a.steps or 1500
        init = load_student("pd_gmm_1")
        for adv, name in ((True, "add_gmm_1"), (False, "add_gmm_1_distill_only")):
            t0 = time.time()
            st, losses = adversarial_distill(gmm, gmm, init, steps=steps, batch_size=a.batch_size, seed=a.seed,
                                             adversarial=adv)
            with torch.no_grad():
                x = one_step(st, z)
            _save(st, name, model_spec(st, dim=2, hidden=128, depth=3), command, steps, losses,
                  {"sw": evaluate(x, ref), "sw_floor": round(floor, 4), "calls": 1, "n": N_EVAL,
                   "mode_coverage": [round(v, 4) for v in mode_coverage(x, gmm)]}, time.time() - t0, x, ref,
                  {"init": "pd_gmm_1", "adversarial": adv, "lambda": 2.5, "r1_gamma": 0.1})
    elif a.method == "pnp":
        _train_pnp(a, command, gmm, z, ref, floor)
    else:
        from .guidance import cfg_sample, gd_sample, gd_step_distill, guidance_distill
        steps = a.steps or 3000
        st, losses = guidance_distill(gmm, steps=steps, batch_size=a.batch_size, seed=a.seed)
        spec = model_spec(st, dim=2, hidden=128, depth=3, num_classes=3, w_embed=True)
        cfg = cfg_sample(gmm, z, 64, 2, 2.0)            # two-pass CFG, 64 steps (128 calls), class 2, w = 2

        def quality(x, calls):
            return {"sw": evaluate(x, cfg), "mse_to_cfg64": round(float(((x - cfg) ** 2).sum(1).mean()), 5),
                    "sw_floor": round(floor, 4), "calls": calls, "n": N_EVAL, "class": 2, "w": 2.0}
        x = gd_sample(st, z, 16, 2, 2.0)
        _save(st, "gd_gmm", spec, command, steps, losses, quality(x, 16), time.time() - t0, x, cfg,
              {"w_range": list(st.w_range), "stage": 1})
        t1 = time.time()
        students, l2 = gd_step_distill(st, gmm, N=16, to=1, steps=steps // 3, batch_size=a.batch_size, seed=a.seed)
        for N in (4, 2, 1):
            x = gd_sample(students[N], z, N, 2, 2.0)
            _save(students[N], f"gd_gmm_{N}", spec, command, steps // 3, l2[N], quality(x, N), time.time() - t1, x, cfg,
                  {"w_range": list(st.w_range), "stage": 2, "stages": "16 -> 8 -> 4 -> 2 -> 1"})
    return 0


PNP_SHIFT = (0.3, -0.2)      # the fine-tuned copy of the base learns the mixture with its means moved by this


def _train_pnp(a, command, gmm, z, ref, floor):
    """pnp_base (3000 steps), pnp_guide (a.steps or 2000, base frozen), pnp_base_ft (600 steps on the shifted mixture)."""
    from ..exact.challenges import shifted
    from . import plugplay as pp
    t0 = time.time()
    base, l_base = pp.train_base(gmm, steps=3000, batch_size=a.batch_size, seed=a.seed)
    t1 = time.time()
    steps = a.steps or 2000
    guide, l_guide = pp.pnp_distill(base, gmm, steps=steps, batch_size=a.batch_size, seed=a.seed)
    t2 = time.time()
    ft, l_ft = pp.finetune(base, shifted(gmm, PNP_SHIFT), steps=600, batch_size=a.batch_size, seed=a.seed + 1)
    t3 = time.time()
    ws = (0.0, 1.0, 2.0, 4.0)
    mse = {"base": pp.one_pass_mse(base, guide, gmm, ws), "fine-tuned": pp.one_pass_mse(ft, guide, shifted(gmm, PNP_SHIFT), ws)}
    quality = {"sw_floor": round(floor, 4), "n": N_EVAL, "class": 2, "w": 2.0,
               "one_pass_mse_to_cfg": {k: {str(w): [round(v, 5) for v in m[w]] for w in ws} for k, m in mse.items()},
               "share_of_base_parameters": round(pp.param_share(guide, base), 4)}
    cfg64 = pp.cfg_sample(base, z, 64, 2, 2.0)
    x_base = pp.cfg_sample(base, z, 64, base.num_classes, 1.0)     # the null label: unconditional samples
    x_pnp = pp.one_pass_sample(base, guide, z, 16, 2, 2.0)
    x_ft = pp.cfg_sample(ft, z, 64, ft.num_classes, 1.0)
    ref_ft = shifted(gmm, PNP_SHIFT).sample(N_EVAL, torch.Generator().manual_seed(1))
    extra = {"shift": list(PNP_SHIFT)}
    _save(base, "pnp_base", model_spec(base, dim=2, hidden=128, depth=3, num_classes=3), command, 3000, l_base,
          dict(quality, sw=evaluate(x_base, ref), calls=64), t1 - t0, x_base, ref, {"role": "base (class-conditional)"})
    _save(guide, "pnp_guide", model_spec(guide, dim=2, base_hidden=128, n_inject=2, hidden=32, num_classes=3), command,
          steps, l_guide, dict(quality, sw=evaluate(x_pnp, cfg64), calls=16), t2 - t1, x_pnp, cfg64,
          {"role": "guide (base frozen); SW against two-pass CFG of the base, 64 steps", "w_range": list(guide.w_range)})
    _save(ft, "pnp_base_ft", model_spec(ft, dim=2, hidden=128, depth=3, num_classes=3), command, 600, l_ft,
          dict(quality, sw=evaluate(x_ft, ref_ft), calls=64), t3 - t2, x_ft, ref_ft, dict(extra, role="fine-tuned copy of pnp_base"))
