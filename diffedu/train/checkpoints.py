"""Checkpoints: safetensors weights whose metadata holds a JSON manifest, and the nets registry.

A checkpoint is one `.safetensors` file (no pickle). Its metadata key "manifest" holds a JSON
dict: how to rebuild the model ("model": factory or class path within diffedu, and its
arguments), the training command that reproduces it, the data, the schedule, the seed, the
steps, the loss curve and the quality reached. So

    load_model(path)            rebuilds the network from the manifest and loads the weights
    pretrained(name)            the same for a checkpoint shipped in diffedu/checkpoints
    pretrained_denoiser(name)   manifest -> schedule -> model -> to_denoiser: the denoiser
                                every sampler takes, with `.schedule` the one it was trained on
"""
from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

from torch import nn

from ..denoiser import NetworkDenoiser, to_denoiser

__all__ = ["CHECKPOINTS", "model_spec", "build_model", "save_checkpoint", "read_manifest",
           "load_model", "pretrained", "pretrained_denoiser", "checkpoint_path"]

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"     # diffedu/checkpoints


def model_spec(model: nn.Module, **kwargs) -> dict:
    """Manifest entry that rebuilds `model`: its class path (within diffedu) and arguments."""
    cls = type(model)
    if not cls.__module__.startswith("diffedu."):
        raise ValueError(f"only diffedu models can be rebuilt from a checkpoint, got {cls.__module__}.{cls.__name__}")
    return {"class": f"{cls.__module__}:{cls.__name__}", "kwargs": kwargs}


def _registry() -> dict:
    """Model name -> "module:factory" for the training CLI (every net of diffedu.nets)."""
    from ..nets import dit, mmdit, unet
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
    """The JSON manifest stored in a checkpoint's metadata ({} when it has none). `path`: a
    .safetensors file, or the name of a shipped checkpoint (e.g. "unet_digits")."""
    from safetensors import safe_open
    with safe_open(str(checkpoint_path(path)), framework="pt") as f:
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


def shipped() -> list[str]:
    """Names of the checkpoints shipped in diffedu/checkpoints, sorted."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.safetensors"))


def checkpoint_path(name) -> Path:
    """A shipped checkpoint's file from its name ("unet_digits"); a Path, or a string ending
    in .safetensors or holding a "/", is taken as a path and returned as a Path."""
    if isinstance(name, Path) or (isinstance(name, str) and (name.endswith(".safetensors") or "/" in name)):
        return Path(name)
    if not isinstance(name, str):
        raise TypeError(f"name must be a checkpoint name (str) or a .safetensors path, got {type(name).__name__}")
    available = shipped()
    if name not in available:
        raise ValueError(f"unknown checkpoint {name!r}; shipped: {available}")
    return CHECKPOINTS / f"{name}.safetensors"


def pretrained(name: str, device=None) -> nn.Module:
    """A shipped checkpoint from diffedu/checkpoints by name (e.g. 'unet_digits'), in eval mode."""
    return load_model(checkpoint_path(name), device)


_AUTO = "auto"


def pretrained_denoiser(name, device=None, clip=_AUTO, cond=None, prediction: str | None = None) -> NetworkDenoiser:
    """The denoiser of a checkpoint, in one call: manifest -> schedule -> model -> to_denoiser.

    name: a shipped checkpoint ("unet_digits", see `python -m diffedu`) or a .safetensors path
      written by `python -m diffedu.train`.
    clip: clamp x0_hat to [-clip, clip]; "auto" (default) gives 1.0 for image checkpoints
      (images live in [-1, 1]) and None for points.
    cond: a default condition bound to the denoiser (e.g. torch.full((B,), 10), the null label
      of the digits models, for an unconditional prior); a call's own `cond` overrides it.
    prediction: what the network predicts (default: the manifest's, i.e. the model's).
    Returns a NetworkDenoiser D: D(x_t, t, cond=None) -> x0_hat with x_t: (B, ...) as the
    training data, t: the schedule's integer steps. D.schedule is the NoiseSchedule the
    checkpoint was trained with (from the manifest), D.model the network (eval mode,
    parameters frozen: gradients flow to x_t only, as guidance and posterior sampling need;
    call D.model.requires_grad_(True) to fine-tune) and D.manifest the manifest.
    """
    from ..data import toy
    from ..schedules import get_schedule
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m diffedu.train`")
    manifest = read_manifest(path)
    if "schedule" not in manifest:
        raise ValueError(f"{path.name} records no schedule in its manifest; use "
                         f"dd.to_denoiser(load_model(path), schedule) with the schedule it was trained on")
    schedule = get_schedule(manifest["schedule"]["name"], manifest["schedule"]["T"])
    model = load_model(path, device).requires_grad_(False)
    if clip == _AUTO:
        clip = None if manifest.get("data", {}).get("name") in toy.TOY else 1.0
    den = to_denoiser(model, schedule, prediction or manifest.get("prediction"), cond=cond, clip=clip)
    den.manifest = manifest
    return den
