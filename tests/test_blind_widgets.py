"""Chapter 10's dashboards: they build, re-draw when the slider moves, and check their inputs."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from diffedu.viz.widgets import blind as wb  # noqa: E402
from _util import png  # noqa: E402


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_kernel_trajectory_explorer_redraws_per_step():
    ks = _rand(5, 7, 7)
    ks = ks / ks.sum((1, 2), keepdim=True)
    box = wb.kernel_trajectory_explorer(ks, _rand(5, 1, 16, 16) * 2 - 1, ks[-1], _rand(1, 16, 16), step=4)
    a = png(box.draw())
    box.slider.value = 0
    assert a != png(box.draw())
    assert box.errors[-1] == 0 and box.errors[0] > 0
    with pytest.raises(ValueError, match="same number"):
        wb.kernel_trajectory_explorer(ks, _rand(4, 1, 16, 16))
    with pytest.raises(ValueError, match="step"):
        wb.kernel_trajectory_explorer(ks, _rand(5, 1, 16, 16), step=5)


def test_w_explorer_moves_the_marker():
    samples = {0.0: _rand(3, 1, 16, 16), 1.0: _rand(3, 1, 16, 16, seed=1)}
    box = wb.w_explorer(samples, _rand(3, 1, 16, 16, seed=2), {0.0: 0.5, 1.0: 0.2}, {0.0: 1.0, 1.0: 2.0}, w=0.0)
    a = png(box.draw())
    box.slider.value = 1.0
    assert a != png(box.draw())
    with pytest.raises(ValueError, match="one value per w"):
        wb.w_explorer(samples, _rand(3, 1, 16, 16), {0.0: 0.5}, {0.0: 1.0, 1.0: 2.0})


def test_exercises_of_chapter_10():
    from diffedu import exercises as ex
    from diffedu.exercises import blind
    blind._self_check()
    for e in blind.EXERCISES:
        assert ex.check(e.name, e.reference, verbose=False), e.name
    wrong_sphere = lambda z: z * z[0].numel() ** 0.5 / z.norm()                    # noqa: E731  one norm for the batch
    wrong_weight = lambda z, scale: 1 - torch.tanh(z.abs() / scale)                 # noqa: E731  magnitude, not gradient
    assert not ex.check("bird_sphere_projection", wrong_sphere, verbose=False)
    assert not ex.check("region_adaptive_weight", wrong_weight, verbose=False)
    assert "sqrt(D)" in ex.hint("bird_sphere_projection") or "D is" in ex.hint("bird_sphere_projection")


def test_shipped_checkpoints_load_and_match_the_script():
    """Every blind/ checkpoint loads through the allow-list (CHECKPOINT_MODELS) and its manifest's
    command is a line of scripts/train_blind.sh; together they stay under 3 MB."""
    from pathlib import Path

    from diffedu.train import checkpoints as ck
    root = Path(__file__).resolve().parents[1]
    script = (root / "scripts" / "train_blind.sh").read_text()
    names = [n for n in ck.shipped() if n.startswith("blind/")]
    assert len(names) == 5
    for name in names:
        cmd = ck.read_manifest(ck.checkpoint_path(name))["command"]
        assert "run " + cmd.split("train ", 1)[1] in script, name
    assert sum(ck.checkpoint_path(n).stat().st_size for n in names) < 3e6
    assert type(ck.pretrained("blind/stablesr_encoder_digits")).__name__ == "TimeAwareEncoder"


def test_perceptual_distances_against_exact_cases():
    from diffedu.inverse.blind import perceptual
    x = _rand(6, 1, 16, 16) * 2 - 1
    f = perceptual.features(x)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(6))
    assert perceptual.perceptual_distance(x, x).abs().max() < 1e-10
    assert perceptual.realism_distance(x[:3], x) < 1e-10 and perceptual.realism_distance(x[:3], f) < 1e-10
    d = perceptual.perceptual_distance(x, x.flip(0))
    assert (d >= 0).all() and (d <= 4 + 1e-6).all() and d.max() > 0
    assert abs(perceptual.frechet_distance(x, x)) < 1e-6
