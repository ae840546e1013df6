"""Exact references: Gaussian mixtures, whose scores, denoisers and posteriors are known in
closed form, and the experiments graded against them, each a module: `guidance` (CFG against
the tilted density), `gaussian_cfg` (the same in closed form for Gaussians), `coupling` (crossing
training lines of flow matching and reflow), `posterior_benchmark` (posterior samplers against
the exact posterior; imported on first use)."""
import importlib

from .gmm import GaussianMixture, GMMDenoiser

__all__ = ["GaussianMixture", "GMMDenoiser", "gmm", "posterior_benchmark"]


def __getattr__(name):
    if name == "posterior_benchmark":
        return importlib.import_module(f"{__name__}.posterior_benchmark")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
