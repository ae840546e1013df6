"""diffedu: a teaching companion for diffusion models.

`import diffedu as dd` gives the core (schedules, forward process, parameterizations,
samplers, exact Gaussian mixtures) at the top level; plotting, widgets and GPU kernels are
imported lazily, on first use, so the core needs only torch and numpy.
"""
from __future__ import annotations

import importlib
import os
import random

import numpy as np
import torch

__version__ = "0.1.0"

_SUBMODULES = {"schedules", "forward", "param", "samplers", "gmm", "metrics", "train", "viz",
               "widgets", "exercises", "data", "nets", "inverse", "kernels", "sde", "flow",
               "guidance", "widgets_flow", "widgets_arch", "widgets_inverse", "widgets_posterior", "image_metrics"}


def device() -> torch.device:
    """CUDA when present (or DIFFEDU_DEVICE if set), else CPU."""
    name = os.environ.get("DIFFEDU_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    for mod in _CORE:
        m = importlib.import_module(f"{__name__}.{mod}")
        if hasattr(m, name):
            return getattr(m, name)
    raise AttributeError(f"module 'diffedu' has no attribute {name!r}")


# Modules whose public names are reachable as dd.<name> (looked up lazily, in this order).
_CORE = ("schedules", "forward", "param", "samplers", "gmm", "metrics", "train")
