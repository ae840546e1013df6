"""Exact references: Gaussian mixtures, whose scores, denoisers and posteriors are known in
closed form, and the experiments graded against them, each a module: `guidance` (CFG against
the tilted density), `gaussian_cfg` (the same in closed form for Gaussians), `coupling` (crossing
training lines of flow matching and reflow), `memorisation` (the ideal denoiser of a training
set against a network trained on it), `posterior_benchmark` (posterior samplers against
the exact posterior), `challenges` (the conclusion's probes of open challenges); each imported
on first use."""
import importlib

from .gmm import GaussianMixture, GMMDenoiser

__all__ = ["GaussianMixture", "GMMDenoiser", "gmm", "guidance", "gaussian_cfg", "coupling", "memorisation",
           "posterior_benchmark", "challenges"]


def __getattr__(name):
    if name in ("guidance", "gaussian_cfg", "coupling", "memorisation", "posterior_benchmark", "challenges"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
