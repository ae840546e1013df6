"""Reading a network's intermediate activations: the `features` method of diffedu's nets.

    model.features(x_t, t, cond=None, layers=None) -> {name: activation}

One forward pass, exactly the forward of `model(x_t, t, cond)` (its output is the entry
"out"), with forward hooks that keep the outputs of named stages: "down.0", "mid", "up.1"
for the U-Net, "block.3" for the transformers, ... (each model's docstring lists its names
and shapes). `layers` picks a subset; hooks are removed afterwards, so the model is left as
it was. The activations are the forward pass's own tensors: under autograd they carry
gradients (wrap the call in torch.no_grad() to only read them).
"""
from __future__ import annotations

from torch import nn

__all__ = ["record_features", "select_layers"]


def select_layers(names, layers) -> list:
    """The requested names among `names` (None: all), in the order of `names`."""
    if layers is None:
        return list(names)
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple, set)):
        raise TypeError(f"layers must be None, a layer name or a list of them, got {type(layers).__name__}")
    layers = list(layers)
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; this model has {list(names)}")
    return [name for name in names if name in layers]          # in forward order


def record_features(taps: dict, layers, run) -> dict:
    """Run `run()` (one forward pass) and return {name: activation} for the requested names.

    taps: name -> (module, transform) in forward order: the activation is transform(output
      of module) (transform None: the output itself); the special name "out" (module None)
      is what run() returns. layers: None (all) or an iterable of names (a ValueError lists
      the valid ones).
    """
    keep = select_layers(taps, layers)
    acts, handles = {}, []
    try:
        for name in keep:
            module, transform = taps[name]
            if module is None:
                continue

            def hook(mod: nn.Module, inputs, output, name=name, transform=transform):
                acts[name] = output if transform is None else transform(output)
            handles.append(module.register_forward_hook(hook))
        out = run()
    finally:
        for h in handles:
            h.remove()
    if "out" in keep:
        acts["out"] = out
    return {name: acts[name] for name in keep}
