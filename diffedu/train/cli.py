"""The training command line: `python -m diffedu.train --model ... --data ... --out X.safetensors`.

Trains a denoiser of diffedu.nets on a toy or image set, then writes X.safetensors (EMA weights
and a JSON manifest holding the exact command, data, schedule, seed, loss curve and quality)
and X.png (50-step DDIM samples). Every shipped checkpoint is reproduced by one such command
(scripts/train_checkpoints.sh). Runs unchanged under torchrun (DistributedDataParallel).
"""
from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import torch

from .._validate import check_positive_int
from ..denoiser import to_denoiser
from ..metrics import sliced_wasserstein
from ..samplers import ddim
from .checkpoints import build_model, loss_curve, save_checkpoint
from .loss import dist_info, train_denoiser

__all__ = ["main", "load_training_data"]


def load_training_data(name: str, n: int | None = None, seed: int = 0, **kwargs):
    """(x (N, ...), labels (N,) or None) for a toy set (points) or an image set by name."""
    from ..data import images, toy
    if n is not None:
        n = check_positive_int("n (the number of examples)", n)     # 0 must not mean "the default"
    if not isinstance(name, str):
        raise TypeError(f"name must be a data set name (str), got {type(name).__name__}")
    if name in toy.TOY:
        if name == "gmm":
            return toy.gmm_data(n or 8000, seed, return_labels=True)
        return toy.get_toy(name, n or 8000, seed), None
    if name not in images.DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(toy.TOY) + sorted(images.DATASETS)}")
    fn = images.DATASETS[name]
    if "n" in inspect.signature(fn).parameters:
        kwargs.setdefault("n", n or 2000)
    if "seed" in inspect.signature(fn).parameters:
        kwargs.setdefault("seed", seed)
    out = fn(**kwargs)
    x, y = (out[0], out[1]) if isinstance(out, tuple) else (out.images, getattr(out, "labels", None))
    if n is not None:
        x, y = x[:n], (None if y is None else y[:n])
    return x.float(), (None if y is None else y.long())


def _parse_kv(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _quality(model, schedule, data, labels, out_png: Path, seed: int) -> dict:
    """Sample with DDIM (50 steps); save a figure; sliced Wasserstein to held-in data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz import plots

    g = torch.Generator().manual_seed(seed)
    n = 2000 if data.ndim == 2 else 64
    x_T = torch.randn((n,) + tuple(data.shape[1:]), generator=g)
    cond = None
    if labels is not None and getattr(model, "num_classes", None):
        cond = torch.arange(n) % model.num_classes
    den = to_denoiser(model, schedule, cond=cond, clip=None if data.ndim == 2 else 1.0)
    with torch.no_grad():
        x = ddim(den, x_T, schedule, min(50, len(schedule)))      # --T below 50 keeps every step
    ref = data[torch.randperm(len(data), generator=g)[:n]]
    sw = sliced_wasserstein(x, ref)
    fig, ax = plt.subplots(figsize=(4, 4))
    if data.ndim == 2:
        plots.plot_points(ax, ref, None, color="0.8", lim=3.5)
        plots.plot_points(ax, x, f"50-step DDIM samples, SW = {sw:.3f}", lim=3.5)
    else:
        plots.show_image(ax, plots.image_grid(x.clamp(-1, 1), nrow=8), f"50-step DDIM, SW = {sw:.3f}")
    fig.savefig(out_png, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return {"sliced_wasserstein_ddim50": round(sw, 4), "figure": out_png.name}


def _number(kind, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite int/float in the given range (an argparse error otherwise)."""
    import argparse

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        bad = not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo))) \
            or (hi is not None and (v > hi or (hi_open and v == hi)))
        if bad:
            lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
            hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (lo_s, hi_s) if x)}, got {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


def main(argv=None):
    import argparse
    import os
    import sys

    from ..param import PREDICTIONS
    from ..schedules import SCHEDULES, get_schedule
    ap = argparse.ArgumentParser(prog="python -m diffedu.train",
                                 description="Train a diffedu denoiser; writes OUT.safetensors (weights + JSON manifest) "
                                             "and OUT.png (samples). Runs unchanged under torchrun (DDP).")
    ap.add_argument("--model", default="mlp", help="mlp, unet_tiny, dit_tiny, mmdit_tiny, ... (see diffedu.nets)")
    ap.add_argument("--model-kw", action="append", metavar="KEY=VALUE", help="model argument, e.g. num_classes=10")
    ap.add_argument("--data", default="moons", help="toy set (moons, gmm, ...) or image set (digits, shapes, phantoms)")
    ap.add_argument("--data-kw", action="append", metavar="KEY=VALUE", help="data argument, e.g. size=16")
    ap.add_argument("--num-examples", type=_number(int, lo=1), default=None,
                    help="number of training examples, >= 1 (default: the set's)")
    ap.add_argument("--schedule", default="linear", choices=sorted(SCHEDULES))
    ap.add_argument("--T", type=_number(int, lo=1, hi=100_000), default=1000)
    ap.add_argument("--prediction", default=None, choices=PREDICTIONS, help="eps, x0, v (default: the model's)")
    ap.add_argument("--steps", type=_number(int, lo=1), default=3000)
    ap.add_argument("--batch-size", type=_number(int, lo=1), default=256)
    ap.add_argument("--lr", type=_number(float, lo=0, lo_open=True), default=2e-3)
    ap.add_argument("--ema", type=_number(float, lo=0, hi=1, hi_open=True), default=0.995)
    ap.add_argument("--label-dropout", type=_number(float, lo=0, hi=1), default=0.0,
                    help="train class-conditional with this CFG dropout")
    ap.add_argument("--seed", type=_number(int, lo=0), default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing OUT.safetensors / OUT.png (otherwise refused)")
    ap.add_argument("--sample-every", type=_number(int, lo=0), default=0, help="save OUT-stepK.png every K steps (0: off)")
    ap.add_argument("--save-all-ranks", action="store_true", help="(DDP) every rank saves OUT.rankR.safetensors")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise SystemExit(f"--out must end in .safetensors, got {out}")
    existing = [p for p in (out, out.with_suffix(".png")) if p.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"{' and '.join(map(str, existing))} already exist(s); pass --overwrite to replace "
                         f"{'them' if len(existing) > 1 else 'it'}, or choose another --out")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    rank, world = dist_info()
    device = torch.device(args.device) if args.device else (
        torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu"))

    model_kw = _parse_kv(args.model_kw)
    if args.prediction:
        model_kw["prediction"] = args.prediction
    torch.manual_seed(args.seed)
    model, spec = build_model(args.model, **model_kw)
    data, labels = load_training_data(args.data, args.num_examples, args.seed, **_parse_kv(args.data_kw))
    if args.label_dropout > 0 and getattr(model, "class_dropout_prob", 0) > 0:
        raise SystemExit(f"{args.model} drops labels itself (class_dropout_prob={model.class_dropout_prob}); "
                         "leave --label-dropout at 0 or pass --model-kw class_dropout_prob=0")
    if args.label_dropout == 0 and not getattr(model, "num_classes", None):
        labels = None
    schedule = get_schedule(args.schedule, args.T)
    out.parent.mkdir(parents=True, exist_ok=True)

    def every(step, loss, ema_model):
        if args.sample_every and rank == 0 and (step + 1) % args.sample_every == 0:
            _quality(ema_model.cpu(), schedule, data, labels, out.with_name(f"{out.stem}-step{step + 1}.png"), args.seed)
            ema_model.to(device)

    t0 = time.time()
    ema_model, losses = train_denoiser(model, data, schedule, args.steps, args.batch_size, args.lr, args.ema,
                                       args.seed, labels, args.label_dropout, device=device, callback=every)
    seconds = time.time() - t0
    # The recorded command reproduces the weights; --overwrite only permits replacing a file, so
    # it is left out (scripts/train_checkpoints.sh adds it after the recorded command).
    command = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    manifest = {"command": "python -m diffedu.train " + " ".join(command),
                "model": spec, "data": {"name": args.data, "n": len(data), "kw": _parse_kv(args.data_kw)},
                "schedule": {"name": args.schedule, "T": args.T}, "prediction": ema_model.prediction,
                "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "world_size": world,
                "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 5), "train_seconds": round(seconds, 1),
                "loss_curve": loss_curve(losses, 200),
                "parameters": sum(p.numel() for p in ema_model.parameters()), "torch": torch.__version__}
    if args.save_all_ranks:
        save_checkpoint(ema_model, out.with_name(f"{out.stem}.rank{rank}.safetensors"), manifest)
    if rank == 0:
        manifest["quality"] = _quality(ema_model.cpu(), schedule, data, labels, out.with_suffix(".png"), args.seed)
        save_checkpoint(ema_model, out, manifest)
        print(json.dumps({k: manifest[k] for k in ("final_loss", "train_seconds", "parameters", "quality")}))
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
