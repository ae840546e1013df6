"""Blind and real-world restoration (chapter 10; survey sections 4.2-4.3): when the
degradation is unknown (a blur kernel to estimate) or messy (a random real-world pipeline).

    degrade     the real-world degradation pipeline (blur, downsampling, noise, JPEG-like
                quantisation in random order and strength), the held-out test set, the oracle's
                forward model (PipelineOperator)
    kernels     Gaussian, motion and defocus kernels; the kernel-image map of the kernel prior
    blind_dps   Blind-DPS (Chung et al. 2023): image and kernel diffusion priors in parallel
    bird        BIRD (Chihaoui et al. 2024): optimise the initial noise of a short DDIM; blind
                variant with a kernel generator; the cheap Jacobian against full backprop
    stablesr    StableSR-style time-aware encoder modulating the frozen prior (w: fidelity-realism)
    diffbir     DiffBIR-style stage-1 regression + ControlNet stage 2 with region-adaptive guidance
    perceptual  the digit-classifier feature distance (a perceptual proxy) and the scoring table
    train       `python -m diffedu.inverse.blind.train <target>`: the shipped small networks

Submodules are imported on first use (`blind.bird`); the network classes that checkpoints may
name are listed in CHECKPOINT_MODELS (diffedu.train.checkpoints.PLUGIN_MODULES).
"""
from __future__ import annotations

import importlib

_SUBMODULES = ("degrade", "kernels", "blind_dps", "bird", "stablesr", "diffbir", "perceptual", "train")

__all__ = [*_SUBMODULES, "CHECKPOINT_MODELS"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "CHECKPOINT_MODELS":
        from .diffbir import Stage1Restorer
        from .stablesr import TimeAwareEncoder
        return (Stage1Restorer, TimeAwareEncoder)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
