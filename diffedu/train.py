"""Training: the simple denoising loss, EMA, seeding, and safetensors checkpoints.

The loss of DDPM (Ho et al. 2020, eq. 14) generalised to every parameterization:
    L = E_{x_0, t, eps} || model(x_t, t) - target(x_0, eps, t) ||^2,
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  t ~ U{0, ..., T-1},
with target eps, x0, v or velocity (param.from_x0_eps). Checkpoints are safetensors files
whose metadata holds a JSON manifest (model class and arguments, data, seed, steps, loss),
so `load_model` rebuilds the network without pickle.
"""
from __future__ import annotations

import copy
import inspect
import importlib
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from ._validate import check_positive_int, check_tensor
from . import viz
from .metrics import sliced_wasserstein
from .param import from_x0_eps, to_denoiser
from .samplers import ddim
from .schedules import NoiseSchedule


def diffusion_loss(model, x0: torch.Tensor, schedule: NoiseSchedule, generator=None, cond=None,
                   prediction: str | None = None) -> torch.Tensor:
    """One Monte Carlo estimate of the denoising loss on the batch x0: (B, ...)."""
    prediction = prediction or getattr(model, "prediction", "eps")
    B = len(x0)
    i = torch.randint(0, len(schedule), (B,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    ab = schedule.alpha_bar.to(x0.device, x0.dtype)[i].reshape((B,) + (1,) * (x0.ndim - 1))
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    t = schedule.timesteps.to(x0.device)[i]
    out = model(xt, t) if cond is None else model(xt, t, cond)
    return ((out - from_x0_eps(x0, eps, ab, prediction)) ** 2).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (buffers copied)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def train_denoiser(model: nn.Module, data: torch.Tensor, schedule: NoiseSchedule, steps: int = 2000,
                   batch_size: int = 256, lr: float = 2e-3, ema: float = 0.995, seed: int = 0,
                   labels: torch.Tensor | None = None, label_dropout: float = 0.0, null_label: int | None = None,
                   progress: bool = True, device=None, callback=None):
    """Train `model` on `data` (N, ...) with the denoising loss; returns (ema_model, losses).

    labels: optional (N,) class labels passed as `cond`; with label_dropout > 0 a fraction of
    them is replaced by `null_label` (default: model.num_classes), which trains the
    unconditional model of classifier-free guidance inside the conditional one.
    Learning rate: cosine decay to 0 over `steps` (stable final weights for small models).
    Under torchrun (torch.distributed initialised, world size > 1) the model is wrapped in
    DistributedDataParallel and each rank draws its own batches (seed + rank); gradients are
    averaged, so every replica (and its EMA) stays identical. callback(step, loss, ema_model)
    is called after each step.
    """
    check_tensor("data", data, min_ndim=2)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if not 0 <= ema < 1:
        raise ValueError(f"ema must lie in [0, 1), got {ema}")
    if labels is not None and labels.shape != (len(data),):
        raise ValueError(f"labels must have shape ({len(data)},), got {tuple(labels.shape)}")
    device = torch.device(device) if device is not None else data.device
    rank, world = _dist_info()
    torch.manual_seed(seed)                        # same initial weights on every rank
    g = torch.Generator().manual_seed(seed + 1000 * rank)
    model = model.to(device).train()
    prediction = getattr(model, "prediction", "eps")
    if null_label is None:
        null_label = getattr(model, "num_classes", None)
    net = model
    if world > 1:       # DDP broadcasts rank 0's weights, so replicas start equal
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def batch_loss():
        idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)
        x0, cond = data[idx].to(device), None
        if labels is not None:
            cond = labels[idx].to(device)
            if label_dropout > 0:
                drop = (torch.rand(len(cond), generator=g) < label_dropout).to(device)
                cond = torch.where(drop, torch.full_like(cond, null_label), cond)
        return diffusion_loss(net, x0, schedule, g, cond, prediction)

    return fit(model, batch_loss, steps, lr, ema, progress=progress and rank == 0, callback=callback)


def fit(model: nn.Module, batch_loss, steps: int, lr: float = 2e-3, ema: float = 0.995,
        progress: bool = True, callback=None, desc: str = "training"):
    """The optimisation loop every trainer shares: Adam with cosine learning-rate decay to 0
    over `steps`, an EMA copy of the weights, a tqdm bar. batch_loss() -> scalar loss of a fresh
    batch (it closes over data, generator and model, or its DDP wrapper). Returns (ema_model, losses);
    callback(step, loss, ema_model) after each step."""
    check_positive_int("steps", steps)
    if not 0 <= ema < 1:
        raise ValueError(f"ema must lie in [0, 1), got {ema}")
    model.train()
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    # A tiny network on a CPU trains faster on one thread: its matrices are too small to split,
    # and thread synchronisation dominates (measured 5x on 2 busy cores). Restored at the end.
    threads = torch.get_num_threads()
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if on_cpu and sum(p.numel() for p in model.parameters()) < 2_000_000:
        torch.set_num_threads(1)
    losses, bar = [], range(steps)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=desc, mininterval=0.5)
    try:
        for step in bar:
            loss = batch_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema_update(ema_model, model, ema)
            losses.append(loss.item())
            if hasattr(bar, "set_postfix") and len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}")
            if callback is not None:
                callback(step, losses[-1], ema_model)
    finally:
        torch.set_num_threads(threads)
    return ema_model, losses


def _dist_info():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# -- checkpoints --------------------------------------------------------------------------
def model_spec(model: nn.Module, **kwargs) -> dict:
    """Manifest entry that rebuilds `model`: its class path (within diffedu) and arguments."""
    cls = type(model)
    if not cls.__module__.startswith("diffedu."):
        raise ValueError(f"only diffedu models can be rebuilt from a checkpoint, got {cls.__module__}.{cls.__name__}")
    return {"class": f"{cls.__module__}:{cls.__name__}", "kwargs": kwargs}


def _registry() -> dict:
    """Model name -> "module:factory" for the training CLI (every net of diffedu.nets)."""
    from .nets import dit, mmdit, unet
    reg = {"mlp": "diffedu.nets.mlp:MLPDenoiser"}
    for mod, table in ((unet, "UNET_MODELS"), (dit, "DIT_MODELS"), (mmdit, "MMDIT_MODELS")):
        reg.update({name: f"{mod.__name__}:{fn.__name__}" for name, fn in getattr(mod, table).items()})
    return reg


def build_model(name: str, **kwargs) -> tuple[nn.Module, dict]:
    """A model by registry name (see `python -m diffedu.train --help`) and its manifest spec."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(reg)}")
    module, fn = reg[name].split(":")
    return getattr(importlib.import_module(module), fn)(**kwargs), {"factory": reg[name], "kwargs": kwargs}


def save_checkpoint(model: nn.Module, path, manifest: dict) -> Path:
    """Write model weights to `path` (.safetensors) with `manifest` (a JSON-able dict, which
    should hold 'model': model_spec(...), the command, data, seed, steps and final loss)."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    manifest = dict(manifest, saved=time.strftime("%Y-%m-%d %H:%M:%S"))
    save_file(state, str(path), metadata={"manifest": json.dumps(manifest)})
    return path


def read_manifest(path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("manifest", "{}"))


def load_model(path, device=None) -> nn.Module:
    """Rebuild a diffedu model from a safetensors checkpoint written by `save_checkpoint`
    (no pickle: the class comes from the manifest and must live in diffedu)."""
    from safetensors.torch import load_file
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with diffedu.train or check the name")
    spec = read_manifest(path).get("model")
    if not spec:
        raise ValueError(f"{path} has no 'model' entry in its manifest; load its weights with safetensors.torch.load_file")
    module, name = (spec.get("factory") or spec["class"]).split(":")
    if not module.startswith("diffedu."):
        raise ValueError(f"refusing to import {module}: checkpoints may only name diffedu classes")
    model = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    model.load_state_dict(load_file(str(path)))
    return model.to(device or "cpu").eval()


CHECKPOINTS = Path(__file__).parent / "checkpoints"


def pretrained(name: str, device=None) -> nn.Module:
    """A shipped checkpoint from diffedu/checkpoints by name (e.g. 'mlp_moons')."""
    available = sorted(p.stem for p in CHECKPOINTS.glob("*.safetensors"))
    if name not in available:
        raise ValueError(f"unknown checkpoint {name!r}; shipped: {available}")
    return load_model(CHECKPOINTS / f"{name}.safetensors", device)


# -- command line -------------------------------------------------------------------------
def load_training_data(name: str, n: int | None = None, seed: int = 0, **kwargs):
    """(x (N, ...), labels (N,) or None) for a toy set (points) or an image set by name."""
    from .data import images, toy
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


def _downsample(losses, n: int) -> list:
    """Mean loss over n equal chunks (for the manifest's loss curve)."""
    k = max(1, len(losses) // n)
    return [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 5) for i in range(0, len(losses), k)]


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

    g = torch.Generator().manual_seed(seed)
    n = 2000 if data.ndim == 2 else 64
    x_T = torch.randn((n,) + tuple(data.shape[1:]), generator=g)
    cond = None
    if labels is not None and getattr(model, "num_classes", None):
        cond = torch.arange(n) % model.num_classes
    den = to_denoiser(model, schedule, cond=cond, clip=None if data.ndim == 2 else 1.0)
    with torch.no_grad():
        x = ddim(den, x_T, schedule, 50)
    ref = data[torch.randperm(len(data), generator=g)[:n]]
    sw = sliced_wasserstein(x, ref)
    fig, ax = plt.subplots(figsize=(4, 4))
    if data.ndim == 2:
        viz.plot_points(ax, ref, None, color="0.8", lim=3.5)
        viz.plot_points(ax, x, f"50-step DDIM samples, SW = {sw:.3f}", lim=3.5)
    else:
        viz.show_image(ax, viz.image_grid(x.clamp(-1, 1), nrow=8), f"50-step DDIM, SW = {sw:.3f}")
    fig.savefig(out_png, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return {"sliced_wasserstein_ddim50": round(sw, 4), "figure": out_png.name}


def main(argv=None):
    import argparse
    import os
    import sys

    from .schedules import get_schedule
    ap = argparse.ArgumentParser(prog="python -m diffedu.train",
                                 description="Train a diffedu denoiser; writes OUT.safetensors (weights + JSON manifest) "
                                             "and OUT.png (samples). Runs unchanged under torchrun (DDP).")
    ap.add_argument("--model", default="mlp", help="mlp, unet_tiny, dit_tiny, mmdit_tiny, ... (see diffedu.nets)")
    ap.add_argument("--model-kw", action="append", metavar="KEY=VALUE", help="model argument, e.g. num_classes=10")
    ap.add_argument("--data", default="moons", help="toy set (moons, gmm, ...) or image set (digits, shapes, phantoms)")
    ap.add_argument("--data-kw", action="append", metavar="KEY=VALUE", help="data argument, e.g. size=16")
    ap.add_argument("--num-examples", type=int, default=None, help="number of training examples (default: the set's)")
    ap.add_argument("--schedule", default="linear")
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--prediction", default=None, help="eps, x0, v (default: the model's)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--label-dropout", type=float, default=0.0, help="train class-conditional with this CFG dropout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", required=True, help="checkpoint path (.safetensors)")
    ap.add_argument("--sample-every", type=int, default=0, help="save OUT-stepK.png every K steps (0: off)")
    ap.add_argument("--save-all-ranks", action="store_true", help="(DDP) every rank saves OUT.rankR.safetensors")
    args = ap.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    rank, world = _dist_info()
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
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise SystemExit(f"--out must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)

    def every(step, loss, ema_model):
        if args.sample_every and rank == 0 and (step + 1) % args.sample_every == 0:
            _quality(ema_model.cpu(), schedule, data, labels, out.with_name(f"{out.stem}-step{step + 1}.png"), args.seed)
            ema_model.to(device)

    t0 = time.time()
    ema_model, losses = train_denoiser(model, data, schedule, args.steps, args.batch_size, args.lr, args.ema,
                                       args.seed, labels, args.label_dropout, device=device, callback=every)
    seconds = time.time() - t0
    manifest = {"command": "python -m diffedu.train " + " ".join(sys.argv[1:] if argv is None else argv),
                "model": spec, "data": {"name": args.data, "n": len(data), "kw": _parse_kv(args.data_kw)},
                "schedule": {"name": args.schedule, "T": args.T}, "prediction": ema_model.prediction,
                "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "world_size": world,
                "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 5), "train_seconds": round(seconds, 1),
                "loss_curve": _downsample(losses, 200),
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


if __name__ == "__main__":
    main()
