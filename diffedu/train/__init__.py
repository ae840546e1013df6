"""Training: the denoising loss, the one optimisation loop, safetensors checkpoints, the CLI.

    loss.py         diffusion_loss (DDPM's simple loss, every parameterization), train_denoiser
    fit.py          fit (Adam, cosine decay, EMA: the loop every trainer shares), ema_update
    checkpoints.py  save_checkpoint / load_model (safetensors + JSON manifest, no pickle),
                    build_model (the nets registry), pretrained / pretrained_denoiser (the
                    checkpoints shipped in diffedu/checkpoints)
    cli.py          `python -m diffedu.train ...`: train, save, sample a quality figure

    >>> D = dd.train.pretrained_denoiser("unet_digits", cond=torch.arange(8))   # labels 0..7
    >>> x = dd.ddim(D, torch.randn(8, 1, 16, 16), D.schedule, 50)                 # (8, 1, 16, 16)
"""
from .checkpoints import (CHECKPOINTS, build_model, checkpoint_path, load_model, model_spec,
                          pretrained, pretrained_denoiser, read_manifest, save_checkpoint, shipped)
from .cli import load_training_data, main
from .fit import ema_update, fit
from .loss import diffusion_loss, train_denoiser

__all__ = ["diffusion_loss", "train_denoiser", "fit", "ema_update",
           "CHECKPOINTS", "model_spec", "build_model", "save_checkpoint", "read_manifest", "load_model",
           "checkpoint_path", "shipped", "pretrained", "pretrained_denoiser",
           "load_training_data", "main"]
