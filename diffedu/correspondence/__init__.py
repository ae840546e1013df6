"""Semantic correspondence from diffusion features (chapter 15, survey section 9).

    warps   shapes with named keypoints under random similarity transforms, smooth warps,
            colours and stripe textures (so raw pixels cannot match them)
    pck     PCK@alpha, the standard score: a match is right within alpha times the larger
            side of the target object's bounding box; per point and per image
    dift    DIFT (Tang et al. 2023): a denoiser's intermediate features at one step t and one
            layer, averaged over noise draws; cosine nearest-neighbour matching; the controls
            (raw pixel patches, a classifier's features)
    evaluate  PCK tables: DIFT swept over t and the layer, the controls, "copy the coordinates"
    attention the cross-attention of chapter 12's caption model: token maps against masks (top-k
            IoU) and Hedlin et al.'s correspondence by optimising a conditioning embedding
    editing prompt-to-prompt word swaps (Hertz et al. 2022) and attend-and-excite (Chefer et al.
            2023): reading and replacing a caption model's cross-attention while sampling
    train   the chapter's three networks (`python -m diffedu.correspondence ...`)

Where the denoiser contract ends: DIFT reads the *network* (its `features(x_t, t, cond,
layers)` hook, nets/features.py), not the denoiser D(x_t, t) = E[x_0 | x_t]: an exact
denoiser has no intermediate layers (nor a context to optimise), so this chapter takes nets, not
denoisers.
Submodules are imported on first use (`dd.correspondence.dift`).
"""
import importlib

__all__ = ["warps", "pck", "dift", "evaluate", "attention", "editing", "train"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
