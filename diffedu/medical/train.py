"""Training of chapter 11b's shipped checkpoints (`python -m diffedu.medical.train NAME`).

    latent_ae32      KL autoencoder on 32 x 32 phantoms (f = 4, 4 latent channels)
    latent_prior32   a U-Net prior on the autoencoder's scaled latents (4 x 8 x 8); needs latent_ae32
    xmod_diffusion   the image-conditioned U-Net denoiser of MR-like images given CT-like ones
    xmod_diffusion_v the same conditional U-Net retrained with v-prediction for longer (the x0 model collapsed)
    xmod_regression  the regression U-Net of the same layout (MSE loss, t = 0)
    prior64          a U-Net prior on whole 64 x 64 phantoms         } the equal-budget pair: the same network,
    patch_prior64    the same U-Net on random 32 x 32 crops of them  } steps and pixels per batch

Each writes diffedu/checkpoints/medical/NAME.safetensors with a manifest (command, data, seed,
steps, loss, CPU seconds, quality on held-out data); `scripts/train_medical_latent.sh` runs
them all. Training data: phantoms / paired renderings of seed 0; held-out data: seed 1.
One thread (torch.set_num_threads(1)): the networks are tiny.
"""
from __future__ import annotations

import argparse
import time

import torch

from ..train.checkpoints import CHECKPOINTS, loss_curve, model_spec, save_checkpoint

SIZE, N_TRAIN, N_TEST = 32, 2000, 64
DEFAULT_STEPS = {"latent_ae32": 2000, "latent_prior32": 2500, "xmod_diffusion": 800, "xmod_diffusion_v": 2000,
                 "xmod_regression": 2000, "prior64": 1500, "patch_prior64": 1500}
BATCH = {"latent_ae32": 32, "latent_prior32": 32, "xmod_diffusion": 16, "xmod_diffusion_v": 16, "xmod_regression": 16,
         "prior64": 4, "patch_prior64": 16}     # prior64 / patch_prior64: 4 x 64^2 = 16 x 32^2 pixels
PATCH64 = 32                     # patch_prior64's crop size: 9 patches at stride 16 tile a 64 x 64 image


def _manifest(name, model, steps, seed, losses, cpu, data, **extra):
    return {"model": model_spec(model, **extra.pop("kwargs")), "command": f"python -m diffedu.medical.train {name} "
            f"--steps {steps} --seed {seed}", "data": data, "seed": seed, "steps": steps, "batch_size": BATCH[name], "lr": 2e-3,
            "final_loss": sum(losses[-100:]) / len(losses[-100:]), "loss_curve": loss_curve(losses, 200),
            "cpu_seconds": round(cpu, 1), **extra}


def _phantom_data(n, seed, size=SIZE):
    from ..data import phantoms
    return phantoms(n, size=size, seed=seed).images


def train_latent_ae(steps, seed):
    from ..metrics import psnr
    from ..nets.autoencoder import Autoencoder
    from ..train.fit import fit
    kwargs = dict(in_channels=1, latent_channels=4, base_channels=8, channel_mult=[1, 2, 2], kl=True)
    torch.manual_seed(seed)
    ae = Autoencoder(**kwargs)
    data, test = _phantom_data(N_TRAIN, 0), _phantom_data(N_TEST, 1)
    g = torch.Generator().manual_seed(seed + 1)
    ema, losses = fit(ae, lambda: ae.loss(data[torch.randint(0, len(data), (BATCH["latent_ae32"],), generator=g)], beta=1e-4,
                                          generator=g), steps, lr=2e-3, progress=False)
    with torch.no_grad():
        rec = ema.decode(ema.encode_latent(test)).clamp(-1, 1)
    quality = {"test_psnr_reconstruction": round(float(psnr(rec, test).mean()), 2)}
    return ema, dict(kwargs=kwargs, losses=losses, data={"name": "phantoms", "n": N_TRAIN, "kw": {"size": SIZE}},
                     quality=quality, beta=1e-4)


def train_latent_prior(steps, seed):
    from ..nets.unet import UNet
    from ..schedules import linear_schedule
    from ..train.checkpoints import pretrained
    from ..train.loss import train_denoiser
    from .latent import AE_NAME, latent_scale
    ae = pretrained(AE_NAME)
    data = _phantom_data(N_TRAIN, 0)
    s = latent_scale(ae, data)
    with torch.no_grad():
        z = s * ae.encode_latent(data)                                  # (N, 4, 8, 8), unit std
    kwargs = dict(in_channels=4, base_channels=16, channel_mult=[1, 2], attention_levels=[1], prediction="eps")
    torch.manual_seed(seed)
    model = UNet(**kwargs)
    ema, losses = train_denoiser(model, z, linear_schedule(1000), steps=steps, batch_size=BATCH["latent_prior32"], lr=2e-3, seed=seed,
                                 progress=False)
    return ema, dict(kwargs=kwargs, losses=losses, schedule={"name": "linear", "T": 1000}, prediction="eps",
                     data={"name": "phantoms-latents", "n": N_TRAIN, "kw": {"size": SIZE}, "autoencoder": AE_NAME},
                     latent_scale=s, latent_shape=list(z.shape[1:]))


def _xmod_batches(seed):
    from .cross_modality import paired_modalities
    return paired_modalities(N_TRAIN, SIZE, seed=0), torch.Generator().manual_seed(seed + 1)


def train_xmod_diffusion(steps, seed, prediction="x0", name="xmod_diffusion"):
    from ..schedules import linear_schedule
    from ..train.fit import fit
    from ..train.loss import diffusion_loss
    from .cross_modality import ImageConditionedUNet
    pairs, g = _xmod_batches(seed)
    kwargs = dict(channels=1, cond_channels=1, base_channels=8, channel_mult=[1, 2, 2], prediction=prediction)
    torch.manual_seed(seed)
    model, sched = ImageConditionedUNet(**kwargs), linear_schedule(1000)

    def batch_loss():
        i = torch.randint(0, len(pairs), (BATCH[name],), generator=g)
        return diffusion_loss(model, pairs.mr[i], sched, g, cond=pairs.ct[i])
    ema, losses = fit(model, batch_loss, steps, lr=2e-3, progress=False)
    return ema, dict(kwargs=kwargs, losses=losses, schedule={"name": "linear", "T": 1000}, prediction=prediction,
                     data={"name": "paired_modalities", "n": N_TRAIN, "kw": {"size": SIZE}, "target": "mr", "cond": "ct"})


def train_xmod_diffusion_v(steps, seed):
    return train_xmod_diffusion(steps, seed, prediction="v", name="xmod_diffusion_v")


def train_xmod_regression(steps, seed):
    import torch.nn.functional as F
    from ..train.fit import fit
    from .cross_modality import regression_unet
    pairs, g = _xmod_batches(seed)
    kwargs = dict(in_channels=1, base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1)
    torch.manual_seed(seed)
    model = regression_unet(**kwargs)

    def batch_loss():
        i = torch.randint(0, len(pairs), (BATCH["xmod_regression"],), generator=g)
        return F.mse_loss(model(pairs.ct[i], torch.zeros(len(i), dtype=torch.long)), pairs.mr[i])
    ema, losses = fit(model, batch_loss, steps, lr=2e-3, progress=False)
    return ema, dict(kwargs=kwargs, losses=losses,
                     data={"name": "paired_modalities", "n": N_TRAIN, "kw": {"size": SIZE}, "target": "mr", "cond": "ct"})


def _train_prior64(steps, seed, patch):
    """The equal-budget pair: one U-Net layout, the same steps and pixels per batch, on whole 64 x 64
    phantoms (patch = None) or on random patch x patch crops of the same phantoms."""
    from ..nets.unet import UNet
    from ..schedules import linear_schedule
    from ..train.fit import fit
    from ..train.loss import diffusion_loss
    from .patches import random_patches
    name = "prior64" if patch is None else "patch_prior64"
    data = _phantom_data(N_TRAIN, 0, size=64)
    kwargs = dict(in_channels=1, base_channels=8, channel_mult=[1, 2, 2], prediction="eps")
    torch.manual_seed(seed)
    model, sched = UNet(**kwargs), linear_schedule(1000)
    g = torch.Generator().manual_seed(seed + 1)

    def batch():
        if patch is None:
            return data[torch.randint(0, len(data), (BATCH[name],), generator=g)]
        return random_patches(data, patch, BATCH[name], g)
    ema, losses = fit(model, lambda: diffusion_loss(model, batch(), sched, g), steps, lr=2e-3, progress=False)
    return ema, dict(kwargs=kwargs, losses=losses, schedule={"name": "linear", "T": 1000}, prediction="eps",
                     data={"name": "phantoms", "n": N_TRAIN, "kw": {"size": 64}, **({} if patch is None else {"patch": patch})})


TRAINERS = {"latent_ae32": train_latent_ae, "latent_prior32": train_latent_prior, "xmod_diffusion": train_xmod_diffusion,
            "xmod_diffusion_v": train_xmod_diffusion_v, "xmod_regression": train_xmod_regression,
            "prior64": lambda steps, seed: _train_prior64(steps, seed, None),
            "patch_prior64": lambda steps, seed: _train_prior64(steps, seed, PATCH64)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m diffedu.medical.train", description=__doc__.split("\n")[0])
    p.add_argument("name", choices=sorted(TRAINERS))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: diffedu/checkpoints/medical/NAME.safetensors")
    a = p.parse_args(argv)
    steps = a.steps or DEFAULT_STEPS[a.name]
    if steps < 1:
        p.error(f"--steps must be >= 1, got {steps}")
    torch.set_num_threads(1)
    t0 = time.process_time()
    model, info = TRAINERS[a.name](steps, a.seed)
    cpu = time.process_time() - t0
    kwargs, losses, data = info.pop("kwargs"), info.pop("losses"), info.pop("data")
    out = a.out or CHECKPOINTS / "medical" / f"{a.name}.safetensors"
    save_checkpoint(model, out, _manifest(a.name, model, steps, a.seed, losses, cpu, data, kwargs=kwargs, **info))
    print(f"{a.name}: {steps} steps, final loss {sum(losses[-100:]) / len(losses[-100:]):.4f}, {cpu:.0f} CPU s -> {out}")


if __name__ == "__main__":
    main()
