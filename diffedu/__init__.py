"""diffedu: a teaching companion for diffusion models.

`import diffedu as dd` gives the core at the top level (the names in `__all__`: schedules,
forward process, parameterizations, the denoiser contract, samplers, Gaussian mixtures,
metrics); each subpackage (`dd.nets`, `dd.inverse`, `dd.viz`, ...) is imported on first use,
so the core needs only torch and numpy.
"""
from __future__ import annotations

import importlib
import os
import random

import numpy as np
import torch

from .denoiser import (Denoiser, FunctionDenoiser, NetworkDenoiser, as_denoiser, sigma_denoiser,
                       to_denoiser)
from .exact.gmm import GaussianMixture
from .forward import forward_trajectory, q_posterior, q_sample
from .metrics import mmd, psnr, sliced_wasserstein, ssim
from .param import PREDICTIONS, convert, from_x0_eps, to_x0_eps, tweedie
from .samplers import (SAMPLERS, Trace, ddim, ddim_sigma, ddim_step, ddpm, ddpm_step, pf_ode_euler_sigma,
                       reverse_loop)
from .schedules import (SCHEDULES, NoiseSchedule, cosine_schedule, from_betas, get_schedule,
                        karras_schedule, karras_sigmas, linear_schedule, sigmoid_schedule)

__version__ = "0.1.0"

# Subpackages and modules reached as dd.<name>, imported on first use.
_LAZY = ("schedules", "forward", "param", "denoiser", "samplers", "sde", "likelihood", "flow",
         "guidance", "exact", "metrics", "train", "data", "nets", "inverse", "distill", "viz",
         "exercises", "kernels", "results", "medical", "segmentation", "domains", "correspondence")

__all__ = [
    "device", "seed_everything",
    "NoiseSchedule", "linear_schedule", "cosine_schedule", "sigmoid_schedule", "karras_sigmas",
    "karras_schedule", "from_betas", "get_schedule", "SCHEDULES",
    "q_sample", "q_posterior", "forward_trajectory",
    "PREDICTIONS", "to_x0_eps", "from_x0_eps", "convert", "tweedie",
    "Denoiser", "NetworkDenoiser", "FunctionDenoiser", "to_denoiser", "as_denoiser", "sigma_denoiser",
    "ddim", "ddpm", "ddim_step", "ddpm_step", "ddim_sigma", "reverse_loop", "pf_ode_euler_sigma", "Trace", "SAMPLERS",
    "GaussianMixture", "sliced_wasserstein", "mmd", "psnr", "ssim",
    "train_denoiser", "pretrained", "pretrained_denoiser", "load_model",
    *_LAZY,
]


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
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("train_denoiser", "pretrained", "pretrained_denoiser", "load_model"):      # training pulls in tqdm
        return getattr(importlib.import_module(f"{__name__}.train"), name)
    raise AttributeError(f"module 'diffedu' has no attribute {name!r}")
