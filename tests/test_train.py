import pytest
import torch

import diffedu as dd
from diffedu.data.toy import get_toy, toy_gmm
from diffedu.nets.mlp import MLPDenoiser
from diffedu.train import load_model, read_manifest, save_checkpoint, model_spec, train_denoiser, pretrained


def test_training_learns_the_exact_denoiser_of_a_gmm():
    """After a short training, the learned denoiser is much closer to the exact one than at init."""
    gmm, s = toy_gmm(), dd.linear_schedule(200)
    data = gmm.sample(4000, torch.Generator().manual_seed(0))
    init = MLPDenoiser(hidden=64, depth=2)
    ema, losses = train_denoiser(MLPDenoiser(hidden=64, depth=2), data, s, steps=600, lr=3e-3, progress=False)
    assert sum(losses[-50:]) < sum(losses[:50])
    xt = dd.q_sample(gmm.sample(500, torch.Generator().manual_seed(1)), 60, s, generator=torch.Generator().manual_seed(2))
    exact = gmm.denoiser(xt, s.alpha_bar[60].item())
    err = lambda m: (dd.to_denoiser(m, s)(xt, 60) - exact).pow(2).mean().item()
    assert err(ema) < 0.25 * err(init)


def test_label_dropout_uses_the_null_label():
    seen = []

    class Spy(MLPDenoiser):
        def forward(self, x, t, cond=None):
            seen.append(cond.clone())
            return super().forward(x, t, cond)

    x, y = get_toy("gmm", 256), torch.zeros(256, dtype=torch.long)
    train_denoiser(Spy(num_classes=3), x, dd.linear_schedule(50), steps=5, labels=y, label_dropout=0.5, progress=False)
    frac = torch.cat(seen).eq(3).float().mean().item()
    assert 0.3 < frac < 0.7


def test_checkpoint_round_trip_and_manifest(tmp_path):
    m = MLPDenoiser(hidden=32, depth=1, prediction="v")
    path = save_checkpoint(m, tmp_path / "m.safetensors",
                           {"model": model_spec(m, hidden=32, depth=1, prediction="v"), "seed": 3})
    assert read_manifest(path)["seed"] == 3
    m2 = load_model(path)
    x, t = torch.randn(4, 2), torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(m2(x, t), m(x, t))
    assert m2.prediction == "v"
    assert not any(p.suffix in {".pt", ".pkl", ".pth"} for p in tmp_path.iterdir())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        save_checkpoint(MLPDenoiser(), tmp_path / "m.pt", {})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="only diffedu models"):
        model_spec(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown checkpoint 'nope'"):
        pretrained("nope")
    with pytest.raises(ValueError, match="ema must lie in"):
        train_denoiser(MLPDenoiser(), torch.randn(10, 2), dd.linear_schedule(10), ema=1.5)
