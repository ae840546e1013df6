"""Training the networks of chapter 15: two on warped shapes (`warps.warped_shapes`), one on
captioned scenes (`data.scenes`).

    python -m diffedu.correspondence diffusion --steps 900 --batch-size 32 --out D.safetensors
    python -m diffedu.correspondence classifier --steps 1200 --batch-size 64 --out C.safetensors
    python -m diffedu.correspondence text_attn --steps 1500 --batch-size 32 --out T.safetensors

diffusion:  unet_tiny with 3 input channels, eps-prediction, the linear schedule (T = 1000),
            trained with the one denoising loss (train.loss.train_denoiser); its features are
            what DIFT reads.
classifier: nets.classifier.ImageClassifier (3 classes: circle, square, triangle) trained with
            cross-entropy on clean images (t = 0), the supervised control of the chapter.
text_attn:  the caption model of chapter 12 (nets.text.text_unet_scenes, v-prediction) with
            TEXT_ATTN_KW: no self-attention in the text encoder (text_depth=0), so the token the
            U-Net reads at position l is word l plus its position and nothing else, and
            cross-attention at every level (16x16, 8x8, 4x4); and the pooled caption path
            (TextUNet.text_to_emb: the mean token added to the timestep embedding, which hands
            every pixel the caption as a bag of words) set to zero and frozen, so the caption
            reaches the image only through cross-attention, as in Stable Diffusion's U-Net.
            Its word maps localise objects (editing.py: prompt-to-prompt, attend-and-excite).
All save with train.checkpoints.save_checkpoint (safetensors + manifest with this command).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..train.checkpoints import build_model, loss_curve, model_spec, save_checkpoint
from .warps import warped_shapes

__all__ = ["train_diffusion", "train_classifier", "train_text_attn", "TEXT_ATTN_KW", "main"]

DATA_KW = dict(size=32, seed=0)          # the training images; chapter 15 evaluates on seed=1
TEXT_ATTN_KW = dict(prediction="v", text_depth=0, cross_attention_levels=[0, 1, 2])
SCENES_KW = dict(size=16, seed=0)        # caption scenes for text_attn; chapter 15 evaluates on seed=1


def train_diffusion(n: int = 2000, steps: int = 900, batch_size: int = 32, seed: int = 0, lr: float = 2e-3):
    """(ema_model, losses, spec) of unet_tiny(in_channels=3) trained on n warped shapes."""
    from ..schedules import get_schedule
    from ..train.loss import train_denoiser
    torch.manual_seed(seed)
    model, spec = build_model("unet_tiny", in_channels=3)
    data = warped_shapes(n, **DATA_KW).images
    ema, losses = train_denoiser(model, data, get_schedule("linear", 1000), steps, batch_size, lr, seed=seed,
                                 progress=False)
    return ema, losses, spec


def train_classifier(n: int = 2000, steps: int = 1200, batch_size: int = 64, seed: int = 0, lr: float = 2e-3):
    """(ema_model, losses, spec, test accuracy) of an ImageClassifier on n warped shapes (t = 0)."""
    from ..nets.classifier import ImageClassifier
    from ..train.fit import fit
    torch.manual_seed(seed)
    kw = dict(in_channels=3, num_classes=3, base_channels=16)
    model = ImageClassifier(**kw)
    data = warped_shapes(n, **DATA_KW)
    g = torch.Generator().manual_seed(seed)

    def batch_loss():
        idx = torch.randint(0, n, (batch_size,), generator=g)
        return F.cross_entropy(model(data.images[idx], 0), data.labels[idx])

    ema, losses = fit(model, batch_loss, steps, lr, progress=False)
    test = warped_shapes(300, size=32, seed=1)
    with torch.no_grad():
        acc = (ema(test.images, 0).argmax(1) == test.labels).float().mean().item()
    return ema, losses, model_spec(ema, **kw), acc


def train_text_attn(n: int = 4000, steps: int = 1500, batch_size: int = 32, seed: int = 0, lr: float = 2e-3,
                    pooled: bool = False, **model_kw):
    """(ema_model, losses, spec) of nets.text.text_unet_scenes(**TEXT_ATTN_KW, **model_kw) trained
    with the v-loss (linear schedule, T = 1000) on n scenes (data.scenes, size 16, seed 0);
    pooled=False zeroes and freezes the pooled caption path text_to_emb (module docstring)."""
    from ..data.scenes import scenes
    from ..nets.text import text_unet_scenes
    from ..schedules import get_schedule
    from ..train.fit import fit
    from ..train.loss import diffusion_loss
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    kw = {**TEXT_ATTN_KW, **model_kw}
    model = text_unet_scenes(**kw)
    if not pooled:
        nn.init.zeros_(model.text_to_emb.weight)
        nn.init.zeros_(model.text_to_emb.bias)
        model.text_to_emb.requires_grad_(False)
    data = scenes(n, **SCENES_KW)
    ids = model.tokenizer.encode(data.captions)
    schedule = get_schedule("linear", 1000)

    def batch_loss():
        i = torch.randint(0, n, (batch_size,), generator=g)
        return diffusion_loss(model, data.images[i], schedule, g, ids[i], kw["prediction"])

    ema, losses = fit(model, batch_loss, steps, lr, progress=False)
    return ema, losses, {"factory": "diffedu.nets.text:text_unet_scenes", "kwargs": kw}


def text_attn_quality(model) -> dict:
    """The manifest's quality entry of the caption model: top-k IoU of the colour and shape words' maps."""
    from ..data.scenes import scenes
    from ..schedules import get_schedule
    from .attention import object_iou, token_maps
    sc = scenes(40, size=16, seed=1, two_object_prob=1.0)
    maps = token_maps(model, sc.images, sc.captions, 300, get_schedule("linear", 1000), n_noise=2)
    out = {}
    for word in ("colour", "shape"):
        own, other, chance = object_iou(maps, sc, word)
        out.update({f"{word}_word_iou": round(own, 4), f"other_{word}_word_iou": round(other, 4)})
    return {**out, "random_iou": round(chance, 4), "setting": "t=300, all attention layers, 2 noise draws",
            "test": "scenes(40, seed=1, two_object_prob=1)"}


def dift_quality(model) -> dict:
    """The manifest's quality entry of the diffusion model: DIFT PCK@0.1 at one fixed setting on test data."""
    from ..schedules import get_schedule
    from .dift import dift_features, pck_of
    from .warps import same_class_pairs
    test = warped_shapes(64, size=32, seed=1)
    feats = dift_features(model, test.images, 50, "up.2", get_schedule("linear", 1000), n_noise=2)["up.2"]
    score = pck_of(feats, test, same_class_pairs(test, 120, seed=0), alpha=0.1)
    return {"dift_pck@0.1": round(score["per_point"], 4), "setting": "t=50, layer up.2, 2 noise draws",
            "test": "warped_shapes(64, size=32, seed=1), same_class_pairs(120, seed=0)"}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m diffedu.correspondence",
                                 description="Train chapter 15's networks: the DIFT U-Net and the classifier on "
                                             "warped shapes, the caption model text_attn on scenes.")
    ap.add_argument("what", choices=("diffusion", "classifier", "text_attn"))
    ap.add_argument("--n", type=int, default=None,
                    help="training images (warped_shapes(n, size=32, seed=0), default 2000; text_attn: scenes, default 4000)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    args.n_given = args.n is not None
    args.n = args.n if args.n_given else 2000
    for flag in ("n", "steps", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.seed < 0:
        ap.error(f"--seed must be >= 0, got {args.seed}")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise SystemExit(f"--out must end in .safetensors, got {out}")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    torch.set_num_threads(1)
    t0 = time.process_time()
    extra = {}
    if args.what == "diffusion":
        kw = dict(steps=args.steps or 900, batch_size=args.batch_size or 32)
        ema, losses, spec = train_diffusion(args.n, seed=args.seed, **kw)
        extra = {"schedule": {"name": "linear", "T": 1000}, "prediction": "eps"}
    elif args.what == "text_attn":
        kw = dict(steps=args.steps or 1500, batch_size=args.batch_size or 32)
        ema, losses, spec = train_text_attn(args.n if args.n_given else 4000, seed=args.seed, **kw)
        extra = {"schedule": {"name": "linear", "T": 1000}, "prediction": "v"}
    else:
        kw = dict(steps=args.steps or 1200, batch_size=args.batch_size or 64)
        ema, losses, spec, acc = train_classifier(args.n, seed=args.seed, **kw)
        extra = {"quality": {"test_accuracy": round(acc, 4), "test": "warped_shapes(300, size=32, seed=1)"}}
    seconds = round(time.process_time() - t0, 1)
    if args.what == "diffusion":
        extra["quality"] = dift_quality(ema)
    elif args.what == "text_attn":
        extra["quality"] = text_attn_quality(ema)
    command = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    tail = losses[-50:]
    manifest = {"command": "python -m diffedu.correspondence " + " ".join(command), "model": spec,
                "data": ({"name": "data.scenes.scenes", "n": args.n if args.n_given else 4000, "kw": SCENES_KW}
                         if args.what == "text_attn" else
                         {"name": "correspondence.warps.warped_shapes", "n": args.n, "kw": DATA_KW}),
                "seed": args.seed, "steps": kw["steps"], "batch_size": kw["batch_size"],
                "final_loss": round(sum(tail) / len(tail), 5), "train_cpu_seconds": seconds,
                "loss_curve": loss_curve(losses, 100),
                "parameters": sum(p.numel() for p in ema.parameters()), "torch": torch.__version__, **extra}
    save_checkpoint(ema, out, manifest)
    print({k: manifest[k] for k in ("final_loss", "train_cpu_seconds", "parameters")}, extra.get("quality", ""))
