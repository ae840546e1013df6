"""Training the chapter's segmentation networks on the synthetic cardiac slices, and loading them.

    python -m diffedu.segmentation.train --method diff --steps 2400 \
        --out diffedu/checkpoints/segmentation/diff_onehot.safetensors

methods: "sup" (the supervised baseline: cross-entropy), "diff" (Wolleb et al., one-hot
code), "bits" (the same with analog bits), "rnd" (recursive noise diffusion). All use one
UNet layout (`unet_config`), so the baseline and the diffusion models have the same size (the
diffusion net's first convolution takes K + 1 channels instead of 1). Each training batch pairs
an image with ONE annotator drawn at random, so the data say "the mask is a distribution".
Weights are stored in float16 (half the size; loading casts them back to float32), the
manifest records the command, the data, the seed, the steps and the held-out Dice reached.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

from .._validate import check_choice
from ..nets.unet import UNet
from ..schedules import cosine_schedule
from . import cardiac, diffseg
from . import metrics as M

__all__ = ["SIZE", "T", "METHODS", "schedule", "unet_config", "train_data", "test_data", "train", "load"]

SIZE = 24                 # pixels per side: 24 = 6 x 2**2, three U-Net levels (24, 12, 6)
T = 1000                  # diffusion steps of the cosine schedule
N_TRAIN, TRAIN_SEED, TEST_SEED = 2000, 1, 2
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "segmentation"
METHODS = {"sup": "supervised U-Net (cross-entropy)", "diff": "diffusion, one-hot code (Wolleb et al.)",
           "bits": "diffusion, analog-bit code", "rnd": "recursive noise diffusion, one-hot code"}


def schedule():
    """The cosine schedule of T = 1000 steps every diffusion model here is trained on."""
    return cosine_schedule(T)


def unet_config(method: str) -> dict:
    """UNet arguments of `method`: 0.28M parameters, attention at the 6 x 6 level and in the middle."""
    check_choice("method", method, METHODS)
    k = 1 if method == "sup" else 1 + diffseg.code_channels(cardiac.NUM_CLASSES, "bits" if method == "bits" else "onehot")
    out = cardiac.NUM_CLASSES if method != "bits" else diffseg.code_channels(cardiac.NUM_CLASSES, "bits")
    return dict(in_channels=k, out_channels=out, base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1,
                attention_levels=[2], prediction="x0")


def train_data(n: int | None = None):
    """(images (n, 1, 24, 24), labels (n, 4, 24, 24)) of the training seed (n: N_TRAIN by default)."""
    return cardiac.cardiac_slices(N_TRAIN if n is None else n, SIZE, annotators=4, seed=TRAIN_SEED)


def test_data(n: int = 64):
    """Held-out slices (another seed): (images (n, 1, 24, 24), labels (n, 4, 24, 24))."""
    return cardiac.cardiac_slices(n, SIZE, annotators=4, seed=TEST_SEED)


def _quick_dice(net, method, images, labels):
    """Mean foreground Dice of one prediction per image against annotator 0 (a training-time check)."""
    net.eval()
    if method == "sup":
        pred = diffseg.supervised_probs(net, images).argmax(1)
    else:
        g = torch.Generator().manual_seed(0)
        enc = "bits" if method == "bits" else "onehot"
        pred = diffseg.sample_masks(net, images, schedule(), 1, 10, cardiac.NUM_CLASSES, enc, generator=g)[0][:, 0]
    return float(M.dice(pred, labels[:, 0], cardiac.NUM_CLASSES)[:, 1:].mean())


def train(method: str, steps: int = 1000, batch_size: int = 32, lr: float = 2e-3, seed: int = 0, progress=True,
          init=None):
    """Train one network; returns (ema_model, losses). init: a checkpoint (name in
    diffedu/checkpoints/segmentation, or a path) to start from (recursive noise diffusion
    fine-tunes the one-hot diffusion network on its own predictions), or a network itself."""
    from ..train.fit import fit
    check_choice("method", method, METHODS)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images, labels = train_data()
    net, sched = UNet(**unet_config(method)), schedule()
    if isinstance(init, torch.nn.Module):
        net.load_state_dict(init.float().state_dict())
    elif init is not None:
        from ..train.checkpoints import load_model
        path = init if init.endswith(".safetensors") else CHECKPOINT_DIR / f"{init}.safetensors"
        net.load_state_dict(load_model(path).float().state_dict())
    enc = "bits" if method == "bits" else "onehot"

    def batch_loss():
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        who = torch.randint(0, labels.shape[1], (batch_size,), generator=g)       # one annotator per image
        x, y = images[idx], labels[idx, who]
        if method == "sup":
            return diffseg.supervised_loss(net, x, y)
        if method == "rnd":
            return diffseg.rnd_loss(net, x, y, sched, generator=g)
        return diffseg.seg_loss(net, x, y, sched, cardiac.NUM_CLASSES, enc, generator=g)
    return fit(net, batch_loss, steps, lr=lr, ema=0.995, progress=progress, desc=method)


def load(name: str) -> UNet:
    """A shipped segmentation network, e.g. load("diff_onehot"), in eval mode (float32)."""
    from ..train.checkpoints import pretrained
    return pretrained(f"segmentation/{name}").float()


def main(argv=None):
    from ..train.checkpoints import model_spec, save_checkpoint
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=sorted(METHODS), required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--init", default=None, help="checkpoint to start from (name or .safetensors path)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.process_time()
    ema, losses = train(a.method, a.steps, a.batch_size, a.lr, seed=a.seed, init=a.init)
    cpu = time.process_time() - t0
    images, labels = test_data(64)
    quality = _quick_dice(ema, a.method, images, labels)
    half = copy.deepcopy(ema).half()
    manifest = {"model": model_spec(ema, **unet_config(a.method)), "method": METHODS[a.method],
                "command": "python -m diffedu.segmentation.train " + " ".join(sys.argv[1:] if argv is None else argv),
                "data": f"cardiac_slices(n={N_TRAIN}, size={SIZE}, annotators=4, seed={TRAIN_SEED}); one annotator per example",
                "schedule": {"name": "cosine", "T": T}, "seed": a.seed, "steps": a.steps,
                "batch_size": a.batch_size, "lr": a.lr, "init": a.init,
                "dtype": "float16 weights (cast to float32 on loading)",
                "final_loss": sum(losses[-100:]) / min(100, len(losses)), "cpu_seconds": round(cpu, 1),
                "quality": {"foreground Dice vs annotator 0, 64 held-out slices (seed 2)": round(quality, 4)}}
    save_checkpoint(half, a.out, manifest)
    print(f"{a.method}: {cpu:.0f} CPU s, final loss {manifest['final_loss']:.4f}, held-out Dice {quality:.3f} -> {a.out}")


if __name__ == "__main__":
    main()
