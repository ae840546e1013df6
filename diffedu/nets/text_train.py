"""Training of chapter 12's caption model and its attribute classifier (scripts/train_control.sh).
The networks themselves are in nets/text.py."""
from __future__ import annotations

import torch

from .text import Tokenizer, text_unet_scenes  # noqa: F401

__all__ = ["train_text_model", "train_scene_classifier"]


def train_text_model(steps: int = 1500, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, n: int = 4000,
                     size: int = 16, prediction: str = "v", progress: bool = True):
    """Train `text_unet_scenes` on n scenes of data/scenes.py (seed `seed`) with the denoising loss
    (`prediction`, linear schedule, T = 1000); captions are dropped to "" with the model's
    probability 0.1. (v rather than eps: with few steps, an eps-network's small errors are
    amplified by 1 / sqrt(alpha_bar) in x0 at high noise, and short runs leave noisy samples.)
    Returns (ema_model, losses, manifest dict) for save_checkpoint."""
    from ..data.scenes import scenes
    from ..schedules import get_schedule
    from ..train.checkpoints import loss_curve
    from ..train.fit import fit
    from ..train.loss import diffusion_loss
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    data = scenes(n, size=size, seed=seed)
    model = text_unet_scenes(prediction=prediction)
    ids = model.tokenizer.encode(data.captions)
    schedule = get_schedule("linear", 1000)

    def batch_loss():
        i = torch.randint(0, n, (batch_size,), generator=g)
        return diffusion_loss(model, data.images[i], schedule, g, ids[i], prediction)

    ema, losses = fit(model, batch_loss, steps, lr, progress=progress, desc="text model")
    manifest = {"model": {"factory": "diffedu.nets.text:text_unet_scenes", "kwargs": {"prediction": prediction}},
                "data": {"name": "scenes", "n": n, "kw": {"size": size, "seed": seed}},
                "schedule": {"name": "linear", "T": 1000}, "prediction": prediction, "seed": seed, "steps": steps,
                "batch_size": batch_size, "lr": lr, "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 5),
                "loss_curve": loss_curve(losses, 50)}
    return ema, losses, manifest


def train_scene_classifier(steps: int = 300, batch_size: int = 128, lr: float = 2e-3, seed: int = 0, n: int = 3000,
                           size: int = 16, noise: float = 0.15, progress: bool = True):
    """The attribute classifier that grades generated scenes: nets.classifier.ImageClassifier on
    the (size / 2)^2 cells of scenes (seed + 100), 10 classes (0 empty, 1 + 3 colour + shape),
    inputs jittered by Gaussian noise of std `noise` (generated images are not as clean as the
    renders), always at t = 0. Returns (ema_model, losses, manifest) with the held-out cell
    accuracy (scenes of seed + 200) in the manifest."""
    import torch.nn.functional as F

    from ..data.scenes import cell_crops, predict_cells, scenes
    from ..nets.classifier import ImageClassifier
    from ..train.checkpoints import loss_curve
    from ..train.fit import fit
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    data = scenes(n, size=size, seed=seed + 100)
    crops, labels = cell_crops(data.images), data.cells.reshape(-1)
    kw = dict(in_channels=3, num_classes=10, base_channels=16, channel_mult=[1, 2], attention=False)
    model = ImageClassifier(**kw)

    def batch_loss():
        i = torch.randint(0, len(crops), (batch_size,), generator=g)
        x = crops[i] + noise * torch.randn(crops[i].shape, generator=g)
        return F.cross_entropy(model(x, 0), labels[i])

    ema, losses = fit(model, batch_loss, steps, lr, ema=0.98, progress=progress, desc="scene classifier")
    test = scenes(500, size=size, seed=seed + 200)
    with torch.no_grad():
        acc = (predict_cells(ema, test.images) == test.cells).float().mean().item()
    manifest = {"model": {"class": "diffedu.nets.classifier:ImageClassifier", "kwargs": kw},
                "data": {"name": "scenes cells", "n": n, "kw": {"size": size, "seed": seed + 100, "noise": noise}},
                "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
                "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5), "loss_curve": loss_curve(losses, 50),
                "quality": {"held_out_cell_accuracy": round(acc, 4), "held_out": "500 scenes, seed + 200"}}
    return ema, losses, manifest
