"""Segmentation by diffusion (chapter 12b, survey sections 6.2 and 6.3): one module per concept.

    cardiac   synthetic short-axis cardiac MRI (4 classes) with several disagreeing annotators
    diffseg   the mask generated with the image as condition (Wolleb et al.), one-hot and
              analog-bit codes, recursive noise diffusion, the single-step shortcut (SDSeg),
              the implicit ensemble, the supervised baseline's loss
    metrics   Dice and IoU per class, the generalized energy distance (d = 1 - IoU), calibration
              (ECE), the correlation of uncertainty with error
    attention the U-Net's self-attention: its maps, and the network with it switched off
    evaluate  one scoreboard row per method, graded against all annotators
    train     training the chapter's networks and loading the shipped ones

The denoiser contract holds for the masks' codes (diffseg's docstring says where it ends).
Modules are imported on first use: `dd.segmentation.metrics`. The shipped networks are
diffedu UNets (already allow-listed), so CHECKPOINT_MODELS is empty.
"""
import importlib

_MODULES = ("cardiac", "diffseg", "metrics", "attention", "evaluate", "train")
__all__ = list(_MODULES)
CHECKPOINT_MODELS = ()


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
