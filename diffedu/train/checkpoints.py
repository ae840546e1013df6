"""Checkpoints: safetensors weights whose metadata holds a JSON manifest, and the nets registry.

A checkpoint is one `.safetensors` file (no pickle). Its metadata key "manifest" holds a JSON
dict: how to rebuild the model ("model": a registered factory or class of diffedu.nets, and
its arguments), the training command that reproduces it, the data, the schedule, the seed, the
steps, the loss curve and the quality reached. So

    load_model(path)            rebuilds the network from the manifest and loads the weights
    pretrained(name)            the same for a checkpoint shipped in diffedu/checkpoints
    pretrained_denoiser(name)   manifest -> schedule -> model -> to_denoiser: the denoiser
                                every sampler takes, with `.schedule` the one it was trained on

Loading treats the file as untrusted input (anyone can hand a student a checkpoint):
    1. the file must parse as safetensors (header length, JSON header, tensor offsets inside the
       file); anything else is "X is not a safetensors checkpoint (...)";
    2. the manifest's "model" names one entry of an allow-list built from the nets' registries
       (`allowed_models()`): no module path is ever imported or resolved, so a manifest cannot call
       a downloader, the training CLI or load_model itself; its kwargs must be JSON scalars (or
       short lists of them), arguments of that model, and integers no larger than the number of
       weights the file holds;
    3. the network is built on the meta device (no memory), every parameter and buffer shape is
       compared with the file's header, and its size with the file's size; only then is it
       built for real and the weights loaded (strict).
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
import time
from pathlib import Path

import torch
from torch import nn

from .._validate import check_choice
from ..denoiser import NetworkDenoiser, to_denoiser

__all__ = ["CHECKPOINTS", "loss_curve", "allowed_models", "model_spec", "build_model", "save_checkpoint", "read_manifest",
           "load_model", "pretrained", "pretrained_denoiser", "checkpoint_path"]

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"     # diffedu/checkpoints


def _registry() -> dict:
    """Model name -> the factory (or class) itself, for the training CLI (every net of diffedu.nets)."""
    from ..nets import dit, mlp, mmdit, unet
    reg = {"mlp": mlp.MLPDenoiser}
    for table in (unet.UNET_MODELS, dit.DIT_MODELS, mmdit.MMDIT_MODELS):
        reg.update(table)
    return reg


def _path_of(fn) -> str:
    return f"{fn.__module__}:{fn.__name__}"


# Modules of later chapters whose networks may be named by a manifest. Each that exists defines
# CHECKPOINT_MODELS: a tuple of classes, or of (factory, class) pairs. A fixed list of the
# package's own modules: a manifest never names a module, so it cannot widen this.
PLUGIN_MODULES = ("nets.control", "nets.text", "inverse.blind", "medical", "segmentation", "domains",
                  "correspondence")


def _plugin_models() -> dict:
    import importlib
    import importlib.util
    out = {}
    for mod in PLUGIN_MODULES:
        full = f"{__package__.rsplit('.', 1)[0]}.{mod}"
        if importlib.util.find_spec(full) is None:            # a chapter not written yet
            continue
        for entry in getattr(importlib.import_module(full), "CHECKPOINT_MODELS", ()):
            fn, cls = entry if isinstance(entry, tuple) else (entry, entry)
            out[_path_of(fn)] = (fn, cls)
    return out


def _allowed() -> dict:
    """"module:name" -> (callable, the class it builds): every registered factory of diffedu.nets,
    the network classes themselves, the distillation students (diffedu.distill) and the
    CHECKPOINT_MODELS of PLUGIN_MODULES. The only things a manifest can make load_model call."""
    from ..distill.common import LevelMLP
    from ..distill.consistency import ConsistencyModel
    from ..distill.plugplay import GuideNet
    from ..nets import autoencoder, classifier, dit, mlp, mmdit, unet
    out = {_path_of(cls): (cls, cls) for cls in (LevelMLP, ConsistencyModel, GuideNet)}
    out.update(_plugin_models())
    for table, cls in ((unet.UNET_MODELS, unet.UNet), (dit.DIT_MODELS, dit.DiT), (mmdit.MMDIT_MODELS, mmdit.MMDiT),
                       (autoencoder.AUTOENCODER_MODELS, autoencoder.Autoencoder)):
        out.update({_path_of(fn): (fn, cls) for fn in table.values()})
    for cls in (mlp.MLPDenoiser, unet.UNet, dit.DiT, mmdit.MMDiT, classifier.ImageClassifier,
                classifier.PointClassifier, autoencoder.Autoencoder):
        out[_path_of(cls)] = (cls, cls)
    return out


def allowed_models() -> list[str]:
    """The "module:name" of every network a checkpoint's manifest may name (the nets' registries)."""
    return sorted(_allowed())


def model_spec(model: nn.Module, **kwargs) -> dict:
    """Manifest entry that rebuilds `model`: its class path (one of allowed_models()) and arguments."""
    cls = type(model)
    if not cls.__module__.startswith("diffedu."):
        raise ValueError(f"only diffedu models can be rebuilt from a checkpoint, got {cls.__module__}.{cls.__name__}")
    if _path_of(cls) not in _allowed():
        raise ValueError(f"only the networks of diffedu.nets can be rebuilt from a checkpoint, got {_path_of(cls)}; "
                         f"allowed: {sorted(_allowed())}")
    _check_kwargs(kwargs, cls, _path_of(cls), limit=None)
    return {"class": _path_of(cls), "kwargs": kwargs}


def build_model(name: str, **kwargs) -> tuple[nn.Module, dict]:
    """A model by registry name (see `python -m diffedu.train --help`) and its manifest spec."""
    reg = _registry()
    if not isinstance(name, str) or name not in reg:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(reg)}")
    fn = reg[name]
    _check_kwargs(kwargs, _allowed()[_path_of(fn)][1], name, limit=None)
    return fn(**kwargs), {"factory": _path_of(fn), "kwargs": kwargs}


def loss_curve(losses, points: int = 100) -> list[float]:
    """A training loss curve for a manifest: the mean loss over `points` equal chunks of the steps
    (the last chunk may be shorter), rounded to 5 decimals. losses: a sequence of floats."""
    losses = [float(v) for v in losses]
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    k = max(1, len(losses) // points)
    return [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 5) for i in range(0, len(losses), k)]


def save_checkpoint(model: nn.Module, path, manifest: dict) -> Path:
    """Write model weights to `path` (.safetensors) with `manifest` (a JSON-able dict, which
    should hold 'model': model_spec(...), the command, data, seed, steps and final loss)."""
    from safetensors.torch import save_file
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest must be a dict, got {type(manifest).__name__}")
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path ending in .safetensors, got {type(path).__name__}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path.name}")
    manifest = dict(manifest, saved=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        text = json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"manifest must be JSON-serialisable (finite numbers, str keys): {err}") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"manifest": text})
    return path


# -- reading an untrusted file ---------------------------------------------------------------
def _not_safetensors(path, why: str) -> ValueError:
    return ValueError(f"{path} is not a safetensors checkpoint ({why}); diffedu loads only .safetensors "
                      f"files written by diffedu.train (no pickle)")


def _open(path):
    """(metadata dict, {name: (dtype str, shape tuple)}) of a safetensors file, read from its
    header without loading any tensor; a clear error for anything that is not one."""
    from safetensors import safe_open
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with diffedu.train or check the name")
    if path.is_dir():
        raise _not_safetensors(path, "it is a directory")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        raise _not_safetensors(path, f"only {size} bytes, too short for a header")
    n = int.from_bytes(head[:8], "little")
    if head[8:9] != b"{" or n > size - 8:
        kind = ("a pickle (torch.save) file" if head[:1] == b"\x80" or head[:2] == b"PK" else
                "its header length does not fit the file" if head[8:9] == b"{" else "no JSON header")
        raise _not_safetensors(path, kind)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: (str(f.get_slice(k).get_dtype()), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
    except Exception as err:        # SafetensorError, OSError, ...: one message for all of them
        raise _not_safetensors(path, f"{type(err).__name__}: {err}") from err
    return meta, shapes


def _manifest_of(path, meta: dict) -> dict:
    text = meta.get("manifest", "{}")
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path} has a manifest that is not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} has a manifest that is not a JSON object (got {type(manifest).__name__})")
    return manifest


def read_manifest(path) -> dict:
    """The JSON manifest stored in a checkpoint's metadata ({} when it has none). `path`: a
    .safetensors file, or the name of a shipped checkpoint (e.g. "unet_digits")."""
    path = checkpoint_path(path)
    return _manifest_of(path, _open(path)[0])


_SCALARS = (str, bool, int, float, type(None))


def _check_kwargs(kwargs, cls, who: str, limit) -> None:
    """kwargs of a model: a dict of argument names of `cls` to JSON scalars or short lists of
    them; with `limit`, integers at most `limit` (the number of weights the file holds: no
    width, depth or size can exceed that in a genuine checkpoint)."""
    if not isinstance(kwargs, dict):
        raise ValueError(f"the manifest's model kwargs for {who} must be a JSON object, got {type(kwargs).__name__}")
    params = inspect.signature(cls.__init__).parameters
    for k, v in kwargs.items():
        if not isinstance(k, str) or k not in params or k == "self":
            raise ValueError(f"{who} has no argument {k!r}; its arguments: {[p for p in params if p != 'self']}")
        items = v if isinstance(v, list) else [v]
        if isinstance(v, list) and len(v) > 64:
            raise ValueError(f"argument {k!r} of {who} is a list of {len(v)} items (at most 64)")
        for item in items:
            if not isinstance(item, _SCALARS) or (isinstance(item, str) and len(item) > 200):
                raise ValueError(f"argument {k!r} of {who} must be a number, a short string, a bool, null "
                                 f"or a list of those, got {type(item).__name__}")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"argument {k!r} of {who} must be finite, got {item}")
            if (limit is not None and isinstance(item, numbers.Integral) and not isinstance(item, bool)
                    and abs(item) > limit):
                raise ValueError(f"argument {k}={item} of {who} is larger than the number of weights the "
                                 f"file holds ({limit}); the manifest does not match the weights")


def _build_checked(spec, shapes: dict, size: int, path) -> nn.Module:
    """Steps 2 and 3 of the module doc: the allow-listed model, checked on the meta device
    against the header, then built for real."""
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: the manifest's 'model' entry must be a JSON object, got {type(spec).__name__}")
    extra = set(spec) - {"factory", "class", "kwargs"}
    target = spec.get("factory", spec.get("class"))
    if extra or not isinstance(target, str) or ("factory" in spec and "class" in spec):
        raise ValueError(f"{path}: the manifest's 'model' entry must be {{'factory' or 'class': name, 'kwargs': {{...}}}}, "
                         f"got keys {sorted(spec)}")
    allowed = _allowed()
    if target not in allowed:
        raise ValueError(f"{path}: refusing to build {target[:100]!r}: a checkpoint may only name one of the "
                         f"registered networks {sorted(allowed)}")
    fn, cls = allowed[target]
    kwargs = spec.get("kwargs", {})
    n_weights = sum(math.prod(shape) for _, shape in shapes.values())
    _check_kwargs(kwargs, cls, target, limit=max(n_weights, 1024))
    # 3. on the meta device: shapes only, no memory
    try:
        with torch.device("meta"):
            meta_model = fn(**kwargs)
    except Exception as err:        # whatever the constructor says about bad arguments
        raise ValueError(f"{path}: the manifest's model arguments are invalid for {target}: {err}") from err
    if not isinstance(meta_model, nn.Module):
        raise ValueError(f"{path}: {target} did not build a network")
    state = meta_model.state_dict()
    missing, unexpected = sorted(set(state) - set(shapes)), sorted(set(shapes) - set(state))
    if missing or unexpected:
        raise ValueError(f"{path}: the weights do not match the manifest's {target}: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    for k, v in state.items():
        if tuple(v.shape) != shapes[k][1]:
            raise ValueError(f"{path}: weight {k!r} has shape {shapes[k][1]} in the file but the manifest's "
                             f"{target} expects {tuple(v.shape)}")
    total = sum(t.numel() * t.element_size() for t in (*meta_model.parameters(), *meta_model.buffers()))
    if total > 4 * size + (64 << 20):
        raise ValueError(f"{path}: the manifest's {target} would need {total / 2**20:.0f} MiB for a "
                         f"{size / 2**20:.1f} MiB file; refusing to build it")
    del meta_model
    return fn(**kwargs)                                      # now known to be of the file's size


def load_model(path, device=None) -> nn.Module:
    """Rebuild a diffedu model from a safetensors checkpoint written by `save_checkpoint`
    (no pickle; the model must be one of allowed_models(), checked against the file before
    anything is allocated: see the module doc)."""
    from safetensors.torch import load_file
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path of a .safetensors file, got {type(path).__name__}")
    path = Path(path)
    meta, shapes = _open(path)
    spec = _manifest_of(path, meta).get("model")
    if not spec:
        raise ValueError(f"{path} has no 'model' entry in its manifest; load its weights with safetensors.torch.load_file")
    device = torch.device(device) if device is not None else torch.device("cpu")
    model = _build_checked(spec, shapes, path.stat().st_size, path)
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as err:
        raise ValueError(f"{path}: its weights could not be loaded ({type(err).__name__}: {err})") from err
    return model.to(device).eval()


def shipped() -> list[str]:
    """Names of the checkpoints shipped in diffedu/checkpoints, sorted: "unet_digits" for the
    top level, "area/name" (e.g. "distill/pd_gmm_4") for a chapter's subfolder."""
    return sorted(p.relative_to(CHECKPOINTS).with_suffix("").as_posix() for p in CHECKPOINTS.rglob("*.safetensors"))


def checkpoint_path(name) -> Path:
    """A shipped checkpoint's file from its name ("unet_digits", "distill/pd_gmm_4"); a Path,
    or any other string ending in .safetensors or holding a "/", is taken as a path."""
    if isinstance(name, str) and name in shipped():
        return CHECKPOINTS / f"{name}.safetensors"
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
    from ..param import PREDICTIONS
    from ..schedules import SCHEDULES, get_schedule
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m diffedu.train`")
    manifest = read_manifest(path)
    if "schedule" not in manifest:
        raise ValueError(f"{path.name} records no schedule in its manifest; use "
                         f"dd.to_denoiser(load_model(path), schedule) with the schedule it was trained on")
    sched = manifest["schedule"]
    if not isinstance(sched, dict) or set(sched) - {"name", "T"} or not isinstance(sched.get("name"), str):
        raise ValueError(f"{path.name}: the manifest's schedule must be {{'name': str, 'T': int}}, got {sched!r}")
    check_choice("schedule", sched["name"], SCHEDULES)
    T = sched.get("T", 1000)
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= 100_000:
        raise ValueError(f"{path.name}: the manifest's schedule T must be an integer in [1, 100000], got {T!r}")
    if manifest.get("prediction") is not None and manifest["prediction"] not in PREDICTIONS:
        raise ValueError(f"{path.name}: the manifest's prediction must be one of {PREDICTIONS}, got {manifest['prediction']!r}")
    schedule = get_schedule(sched["name"], T)
    model = load_model(path, device).requires_grad_(False)
    if clip == _AUTO:
        data = manifest.get("data")
        clip = None if isinstance(data, dict) and data.get("name") in toy.TOY else 1.0
    den = to_denoiser(model, schedule, prediction or manifest.get("prediction"), cond=cond, clip=clip)
    den.manifest = manifest
    return den
