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
import importlib
import json
import time
from pathlib import Path

import torch
from torch import nn

from ._validate import check_positive_int, check_tensor
from .param import from_x0_eps
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
                   progress: bool = True, device=None):
    """Train `model` on `data` (N, ...) with the denoising loss; returns (ema_model, losses).

    labels: optional (N,) class labels passed as `cond`; with label_dropout > 0 a fraction of
    them is replaced by `null_label` (default: model.num_classes), which trains the
    unconditional model of classifier-free guidance inside the conditional one.
    Learning rate: cosine decay to 0 over `steps` (stable final weights for small models).
    """
    check_tensor("data", data, min_ndim=2)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if not 0 <= ema < 1:
        raise ValueError(f"ema must lie in [0, 1), got {ema}")
    if labels is not None and labels.shape != (len(data),):
        raise ValueError(f"labels must have shape ({len(data)},), got {tuple(labels.shape)}")
    device = torch.device(device) if device is not None else data.device
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = model.to(device).train()
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + torch.cos(torch.tensor(k / steps * torch.pi)).item()))
    if null_label is None:
        null_label = getattr(model, "num_classes", None)
    # A tiny network on a CPU trains faster on one thread: its matrices are too small to split,
    # and thread synchronisation dominates (measured 5x on 2 busy cores). Restored at the end.
    threads = torch.get_num_threads()
    if device.type == "cpu" and sum(p.numel() for p in model.parameters()) < 2_000_000:
        torch.set_num_threads(1)
    try:
        return _train_loop(model, ema_model, opt, sched, data, labels, schedule, steps, batch_size, ema,
                           label_dropout, null_label, g, device, progress)
    finally:
        torch.set_num_threads(threads)


def _train_loop(model, ema_model, opt, sched, data, labels, schedule, steps, batch_size, ema,
                label_dropout, null_label, g, device, progress):
    losses = []
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc="training", mininterval=0.5)
    for _ in bar:
        idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)
        x0 = data[idx].to(device)
        cond = None
        if labels is not None:
            cond = labels[idx].to(device)
            if label_dropout > 0:
                drop = torch.rand(len(cond), generator=g).to(device) < label_dropout
                cond = torch.where(drop, torch.full_like(cond, null_label), cond)
        loss = diffusion_loss(model, x0, schedule, g, cond)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema_model, model, ema)
        losses.append(loss.item())
        if progress and len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}")
    return ema_model, losses


# -- checkpoints --------------------------------------------------------------------------
def model_spec(model: nn.Module, **kwargs) -> dict:
    """Manifest entry that rebuilds `model`: its class path (within diffedu) and arguments."""
    cls = type(model)
    if not cls.__module__.startswith("diffedu."):
        raise ValueError(f"only diffedu models can be rebuilt from a checkpoint, got {cls.__module__}.{cls.__name__}")
    return {"class": f"{cls.__module__}:{cls.__name__}", "kwargs": kwargs}


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
    module, name = spec["class"].split(":")
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
