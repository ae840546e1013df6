"""Diffusion beyond images (chapter 14, survey section 8): one module per kind of data.

    discrete     D3PM (uniform and absorbing transitions) and masked diffusion (MDLM)
    lowrank      mixtures of low-rank Gaussians: exact denoiser, memorisation to generalisation
    geometry     the sphere S^2 and the flat torus: on-manifold checks, exp / log maps, distances
    manifold     Riemannian flow matching on the sphere S^2 and the flat torus
    equivariant  E(n)-equivariant diffusion on point clouds (EGNN)

Each module's docstring says where the denoiser contract ends for its data and why.
Modules are imported on first use: `dd.domains.discrete`.
"""
import importlib

_MODULES = ("discrete", "lowrank", "geometry", "manifold", "equivariant")
__all__ = list(_MODULES)


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "CHECKPOINT_MODELS":                 # networks any of the modules ships as checkpoints
        out = ()
        for mod in _MODULES:
            try:
                out += tuple(getattr(importlib.import_module(f"{__name__}.{mod}"), "CHECKPOINT_MODELS", ()))
            except ModuleNotFoundError as err:
                if err.name != f"{__name__}.{mod}":
                    raise
        return out
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
