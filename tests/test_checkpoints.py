"""Every shipped checkpoint in diffedu/checkpoints: loads without pickle, carries a complete
manifest whose command the training CLI accepts, runs, and samples (cheaply; no retraining)."""
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

import diffedu as dd
from diffedu.train import CHECKPOINTS, load_model, pretrained, pretrained_denoiser, read_manifest

NAMES = sorted(p.stem for p in CHECKPOINTS.glob("*.safetensors"))
EXPECTED = {"unet_digits", "dit_digits_adaln_zero", "dit_digits_adaln", "dit_digits_cross_attention",
            "dit_digits_in_context", "mmdit_digits"}
MANIFEST_KEYS = {"command", "data", "seed", "steps", "final_loss", "quality", "model", "loss_curve", "parameters"}


def _cli_parser():
    """The argparse parser of `python -m diffedu.train`, captured without training anything."""
    import argparse
    from diffedu import train
    captured = {}
    original = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = grab
    try:
        with pytest.raises(SystemExit):
            train.main(["--out", "x.safetensors"])
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured["parser"]


def test_the_book_checkpoints_are_shipped_and_small():
    assert EXPECTED <= set(NAMES), f"missing: {EXPECTED - set(NAMES)}"
    sizes = {p.name: p.stat().st_size for p in CHECKPOINTS.iterdir() if p.is_file()}
    assert sum(sizes.values()) < 20e6, sizes
    readme = (CHECKPOINTS / "README.md").read_text()
    for name in NAMES:
        assert f"`{name}`" in readme
        assert (CHECKPOINTS / f"{name}.png").exists()


def test_the_script_reproduces_every_manifest_command_exactly():
    """A dry run of scripts/train_checkpoints.sh (PYTHON=echo python) prints the command of
    every checkpoint; each must equal the one recorded in that checkpoint's manifest (plus the
    --overwrite that replacing a shipped file needs)."""
    script = Path(__file__).parents[1] / "scripts" / "train_checkpoints.sh"
    out = subprocess.run(["bash", str(script)], env={**os.environ, "PYTHON": "echo python"},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    printed = [line for line in out.splitlines() if line.startswith("python -m diffedu.train ")]
    # the script replaces the shipped files, so it adds --overwrite, which manifests do not record
    assert printed and all(line.endswith(" --overwrite") for line in printed)
    printed = [line.removesuffix(" --overwrite") for line in printed]
    assert sorted(printed) == sorted(read_manifest(CHECKPOINTS / f"{n}.safetensors")["command"] for n in NAMES)


def test_pretrained_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown checkpoint"):
        pretrained("no_such_model")


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_is_pickle_free_and_its_manifest_complete(name):
    path = CHECKPOINTS / f"{name}.safetensors"
    assert path.read_bytes()[8:9] == b"{"                  # safetensors: u64 header size, then JSON
    m = read_manifest(path)
    assert MANIFEST_KEYS <= set(m), MANIFEST_KEYS - set(m)
    assert m["command"].startswith("python -m diffedu.train ")
    assert f"--out diffedu/checkpoints/{name}.safetensors" in m["command"]
    assert m["final_loss"] > 0 and len(m["loss_curve"]) > 10
    assert m["quality"]["sliced_wasserstein_ddim50"] > 0 and m["quality"]["figure"] == f"{name}.png"
    model = load_model(path)
    assert m["parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_manifest_command_parses_with_the_cli_and_rebuilds_the_same_model(name):
    from diffedu.train import build_model
    from diffedu.train.cli import _parse_kv
    m = read_manifest(CHECKPOINTS / f"{name}.safetensors")
    args = _cli_parser().parse_args(shlex.split(m["command"])[3:])
    assert args.steps == m["steps"] and args.seed == m["seed"] and args.data == m["data"]["name"]
    kw = _parse_kv(args.model_kw)
    if args.prediction:
        kw["prediction"] = args.prediction
    _, spec = build_model(args.model, **kw)
    assert spec == m["model"]


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_runs_and_samples(name):
    model = pretrained(name)
    m = read_manifest(CHECKPOINTS / f"{name}.safetensors")
    size = m["data"]["kw"].get("size", 16)
    schedule = dd.get_schedule(m["schedule"]["name"], m["schedule"]["T"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, size, size, generator=g)
    cond = torch.tensor([0, 3, 7, 9]) if getattr(model, "num_classes", None) else None
    with torch.no_grad():
        out = model(x, torch.tensor([0, 10, 500, 999]), cond)
        assert out.shape == x.shape and torch.isfinite(out).all()
        den = dd.to_denoiser(model, schedule, cond=cond, clip=1.0)
        sample = dd.ddim(den, x, schedule, 10)
    assert sample.shape == x.shape and sample.min() >= -1.0 - 1e-5 and sample.max() <= 1.0 + 1e-5
    assert sample.std() > 0.1                                # not collapsed to a constant
    if cond is not None and model.class_dropout_prob > 0:     # the null label (CFG) works too
        with torch.no_grad():
            assert torch.isfinite(model(x, 500, torch.full((4,), model.num_classes))).all()


def test_pretrained_denoiser_is_the_checkpoint_on_the_schedule_it_was_trained_with():
    """manifest -> schedule -> model -> to_denoiser in one call, equal to the plumbing by hand."""
    D = pretrained_denoiser("unet_digits")
    m = read_manifest(CHECKPOINTS / "unet_digits.safetensors")
    assert read_manifest("unet_digits") == m                  # a shipped name works as well as a path
    schedule = dd.get_schedule(m["schedule"]["name"], m["schedule"]["T"])
    assert isinstance(D, dd.NetworkDenoiser) and D.manifest == m
    assert D.schedule.name == schedule.name and len(D.schedule) == m["schedule"]["T"]
    torch.testing.assert_close(D.schedule.alpha_bar, schedule.alpha_bar, rtol=0, atol=0)
    assert torch.equal(D.schedule.timesteps, schedule.timesteps)
    assert D.prediction == m["prediction"] and D.clip == 1.0   # images: x0_hat clamped to [-1, 1]
    assert not D.model.training and not any(p.requires_grad for p in D.model.parameters())

    g = torch.Generator().manual_seed(0)
    x, t, y = torch.randn(3, 1, 16, 16, generator=g), torch.tensor([10, 500, 999]), torch.tensor([0, 3, 10])
    with torch.no_grad():
        x0, eps = D.x0_eps(x, t, y)
        by_hand = dd.to_denoiser(pretrained("unet_digits"), schedule, cond=y, clip=1.0).x0_eps(x, t)
    assert x0.shape == eps.shape == x.shape and x0.abs().max() <= 1.0
    torch.testing.assert_close((x0, eps), by_hand)

    prior = pretrained_denoiser("unet_digits", cond=torch.full((3,), 10), clip=None)   # the null label
    assert prior.clip is None
    with torch.no_grad():
        assert dd.ddim(prior, x, prior.schedule, 4).shape == x.shape


def test_pretrained_denoiser_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown checkpoint"):
        pretrained_denoiser("no_such_model")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pretrained_denoiser(tmp_path / "missing.safetensors")


def test_loss_curve_is_the_chunk_means():
    from diffedu.train.checkpoints import loss_curve
    assert loss_curve([1, 3, 5, 7, 9, 11], 3) == [2.0, 6.0, 10.0]
    assert loss_curve([1, 2, 3, 4, 5], 2) == [1.5, 3.5, 5.0]             # a shorter last chunk
    assert loss_curve([4.0], 50) == [4.0]
    with pytest.raises(ValueError, match="points must be a positive int"):
        loss_curve([1.0], 0)
