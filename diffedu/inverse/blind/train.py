"""Training of chapter 10's small networks; each writes diffedu/checkpoints/blind/<name>.safetensors
with its manifest (the command, data, seed, steps, loss and quality reached).

    python -m diffedu.inverse.blind.train kernel_prior  --steps 3000 --seed 0
    python -m diffedu.inverse.blind.train classifier    --steps 400 --seed 0
    python -m diffedu.inverse.blind.train stage1        --steps 1500 --seed 0
    python -m diffedu.inverse.blind.train encoder       --steps 400 --seed 0
    python -m diffedu.inverse.blind.train adapter       --steps 300 --seed 0

kernel_prior  MLPDenoiser on 7 x 7 kernel images (the Blind-DPS kernel prior), linear 1000-step schedule
classifier    ImageClassifier on clean 16 x 16 digits (t = 0): the perceptual-distance features
stage1        the DiffBIR stage-1 regression restorer (a small UNet on the bicubic upsampling)
encoder       the StableSR-style time-aware encoder, with the digits prior frozen
adapter       the DiffBIR stage-2 ControlNet (nets/control.py) on stage-1 outputs, prior frozen
Training pairs come from `degrade.degrade` on the digits train split (fresh degradations
every batch, from the seed); the test split stays held out. One thread (torch.set_num_threads(1)).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from ...train.checkpoints import CHECKPOINTS, loss_curve, model_spec, save_checkpoint

OUT = CHECKPOINTS / "blind"
KERNEL_SIZE = 7


class _Pairs:
    """(clean (b, 1, 16, 16), degraded (b, 1, 8, 8)) batches drawn from a pool of `reps`
    real-world degradations of each training image (drawn once: the pipeline costs more than
    a training step of these small networks)."""

    def __init__(self, x: torch.Tensor, g: torch.Generator, reps: int = 4):
        from .degrade import degrade
        self.clean = x.repeat(reps, 1, 1, 1)
        self.y = torch.cat([degrade(c, g)[0] for c in self.clean.split(256)])
        self.g = g

    def __call__(self, batch: int):
        idx = torch.randint(len(self.clean), (batch,), generator=self.g)
        return self.clean[idx], self.y[idx]


def _adam_loop(params, loss_fn, steps: int, lr: float):
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def train_kernel_prior(steps: int, seed: int):
    from ...metrics import sliced_wasserstein
    from ...nets.mlp import MLPDenoiser
    from ...samplers import ddim
    from ...schedules import linear_schedule
    from ...train import train_denoiser
    from .kernels import kernel_dataset, kernel_to_image
    data = kernel_to_image(kernel_dataset(20000, KERNEL_SIZE, seed=seed)).reshape(20000, -1)
    kw = dict(dim=KERNEL_SIZE ** 2, hidden=192, depth=3)
    torch.manual_seed(seed)
    model, losses = train_denoiser(MLPDenoiser(**kw), data, linear_schedule(1000), steps=steps, batch_size=256,
                                   lr=2e-3, seed=seed, progress=False)
    from ...denoiser import to_denoiser
    sched = linear_schedule(1000)
    D = to_denoiser(model.eval(), sched, clip=1.0)
    with torch.no_grad():
        s = ddim(D, torch.randn(512, KERNEL_SIZE ** 2, generator=torch.Generator().manual_seed(1)), sched, 50)
    held = kernel_to_image(kernel_dataset(512, KERNEL_SIZE, seed=seed + 999)).reshape(512, -1)
    train_sub = data[:512]
    sw = sliced_wasserstein(s, held, 256, torch.Generator().manual_seed(0))
    floor = sliced_wasserstein(train_sub, held, 256, torch.Generator().manual_seed(0))
    return model, dict(model=model_spec(model, **kw), schedule={"name": "linear", "T": 1000}, prediction="eps",
                       data={"name": "kernel_dataset", "n": 20000, "size": KERNEL_SIZE, "seed": seed},
                       losses=losses, quality={"sw_ddim50_vs_heldout": round(float(sw), 4),
                                               "sw_train_vs_heldout": round(float(floor), 4)})


def train_classifier(steps: int, seed: int):
    from ...data.images import digits
    from ...nets.classifier import ImageClassifier
    x, labels = digits(16, split="train")
    xt, lt = digits(16, split="test")
    kw = dict(base_channels=16, channel_mult=[1, 2, 2], attention=False)
    torch.manual_seed(seed)
    model = ImageClassifier(**kw)
    g = torch.Generator().manual_seed(seed)

    def loss_fn():
        idx = torch.randint(len(x), (128,), generator=g)
        return torch.nn.functional.cross_entropy(model(x[idx], 0), labels[idx])
    losses = _adam_loop(model.parameters(), loss_fn, steps, 2e-3)
    model.eval()
    with torch.no_grad():
        acc = (model(xt, 0).argmax(1) == lt).float().mean().item()
    return model, dict(model=model_spec(model, **kw), data={"name": "digits", "size": 16, "split": "train"},
                       losses=losses, quality={"test_accuracy": round(acc, 4)})


def train_stage1(steps: int, seed: int):
    from ...data.images import digits
    from ...metrics import psnr
    from .diffbir import STAGE1_KW, Stage1Restorer
    from .degrade import test_set
    x, _ = digits(16, split="train")
    torch.manual_seed(seed)
    model = Stage1Restorer(**STAGE1_KW)
    pairs = _Pairs(x, torch.Generator().manual_seed(seed))

    def loss_fn():
        clean, y = pairs(64)
        return ((model(y) - clean) ** 2).mean()
    losses = _adam_loop(model.parameters(), loss_fn, steps, 2e-3)
    model.eval()
    xt, yt, _ = test_set("digits", 64, seed=20_000)
    with torch.no_grad():
        p = psnr(model(yt).clamp(-1, 1), xt).mean().item()
    return model, dict(model=model_spec(model, **STAGE1_KW), data={"name": "digits", "split": "train",
                       "degradations": "degrade.degrade defaults"}, losses=losses,
                       quality={"psnr_heldout_64": round(p, 2)})


def train_encoder(steps: int, seed: int):
    from ...data.images import digits
    from ...train import pretrained_denoiser
    from ...train.loss import diffusion_loss
    from .stablesr import ENCODER_KW, TimeAwareEncoder, modulated
    x, _ = digits(16, split="train")
    prior = pretrained_denoiser("unet_digits")
    torch.manual_seed(seed)
    enc = TimeAwareEncoder(**ENCODER_KW)
    g = torch.Generator().manual_seed(seed)
    pairs = _Pairs(x, g)

    def loss_fn():
        clean, y = pairs(32)
        with modulated(prior.model, enc, y) as net:
            return diffusion_loss(net, clean, prior.schedule, g, cond=torch.full((len(y),), 10))
    losses = _adam_loop(enc.parameters(), loss_fn, steps, 2e-3)
    return enc, dict(model=model_spec(enc, **ENCODER_KW), base="unet_digits", schedule={"name": "linear", "T": 1000},
                     data={"name": "digits", "split": "train", "degradations": "degrade.degrade defaults"},
                     losses=losses, quality={})


def train_adapter(steps: int, seed: int):
    from ...data.images import digits
    from ...nets.control import ControlledUNet, ControlNet
    from ...train import pretrained, pretrained_denoiser
    from ...train.loss import diffusion_loss
    x, _ = digits(16, split="train")
    prior = pretrained_denoiser("unet_digits")
    stage1 = pretrained("blind/stage1_digits").requires_grad_(False)
    torch.manual_seed(seed)
    cn = ControlNet("unet_digits", hint_channels=1)
    model = ControlledUNet(prior.model, cn)
    g = torch.Generator().manual_seed(seed)
    pairs = _Pairs(x, g)

    def loss_fn():
        clean, y = pairs(32)
        with torch.no_grad():
            hint = stage1(y).clamp(-1, 1)
        return diffusion_loss(model.with_hint(hint), clean, prior.schedule, g, cond=torch.full((len(y),), 10))
    losses = _adam_loop(cn.parameters(), loss_fn, steps, 1e-3)
    return cn, dict(model=model_spec(cn, base_unet="unet_digits", hint_channels=1), base="unet_digits",
                    stage1="blind/stage1_digits", schedule={"name": "linear", "T": 1000},
                    data={"name": "digits", "split": "train", "hint": "stage-1 output"}, losses=losses, quality={})


TARGETS = {"kernel_prior": (train_kernel_prior, "kernel_prior_7"), "classifier": (train_classifier, "classifier_digits"),
           "stage1": (train_stage1, "stage1_digits"), "encoder": (train_encoder, "stablesr_encoder_digits"),
           "adapter": (train_adapter, "diffbir_controlnet_digits")}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m diffedu.inverse.blind.train", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    fn, name = TARGETS[a.target]
    t0 = time.process_time()
    model, man = fn(a.steps, a.seed)
    losses = man.pop("losses")
    man.update(command=f"python -m diffedu.inverse.blind.train {a.target} --steps {a.steps} --seed {a.seed}",
               seed=a.seed, steps=a.steps, final_loss=round(sum(losses[-50:]) / len(losses[-50:]), 5),
               loss_curve=loss_curve(losses, 50), cpu_seconds=round(time.process_time() - t0, 1),
               parameters=sum(p.numel() for p in model.state_dict().values()))
    path = save_checkpoint(model, OUT / f"{name}.safetensors", man)
    print(f"{path}: {man['quality']} final loss {man['final_loss']} in {man['cpu_seconds']} CPU s", file=sys.stderr)


if __name__ == "__main__":
    main()
