"""Medical imaging with diffusion models (chapter 11, survey section 5): one module per idea.

    latent          latent diffusion on phantoms: a KL autoencoder, a small prior on its scaled
                    latents, `latent_denoiser` (a Denoiser over latents) and decoding (LDM)
    resample        ReSample (Song et al., ICLR 2024): latent DPS, hard data consistency by
                    optimisation, stochastic resampling; and its pixel-space DPS baseline's runner
    cross_modality  paired CT-like / MR-like renderings of one anatomy, an image-conditioned
                    diffusion model against a regression network, calibration of the samples' spread
    patches         a patch prior applied to a larger image by averaging overlapping x0 predictions
    train           the training entry point of the shipped checkpoints (`python -m diffedu.medical.train`)

Modules are imported on first use: `dd.medical.latent`. The networks a checkpoint of this
chapter may name are listed in CHECKPOINT_MODELS (the allow-list of diffedu.train.checkpoints).
"""
import importlib

_MODULES = ("latent", "resample", "cross_modality", "patches", "train")
__all__ = list(_MODULES) + ["CHECKPOINT_MODELS"]


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "CHECKPOINT_MODELS":        # the one new network class of this chapter
        from .cross_modality import ImageConditionedUNet
        return (ImageConditionedUNet,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
