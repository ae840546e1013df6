import math

import pytest
import torch

import diffedu as dd


def test_linear_alpha_bar_closed_form():
    s = dd.linear_schedule(T=50, beta_start=1e-3, beta_end=0.05)
    betas = [1e-3 + (0.05 - 1e-3) * i / 49 for i in range(50)]
    expected = [math.prod(1 - b for b in betas[: i + 1]) for i in range(50)]
    torch.testing.assert_close(s.alpha_bar, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(s.betas, torch.tensor(betas, dtype=torch.float64))


def test_cosine_alpha_bar_closed_form_and_clipping():
    T, s_ = 1000, 0.008
    s = dd.cosine_schedule(T)
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2
    for t in (0, 10, 500, 900):               # before the clip is reached: alpha_bar_t = f(t+1)/f(0)
        assert s.alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert s.betas.max().item() == pytest.approx(0.999)       # clipped at the end
    assert s.betas[-1].item() == pytest.approx(0.999)


def test_sigmoid_and_karras():
    s = dd.sigmoid_schedule(100)
    assert s.alpha_bar[0] > 0.99 and s.alpha_bar[-1] < 1e-3
    sig = dd.karras_sigmas(10, 0.002, 80.0, 7.0)
    assert sig[0].item() == pytest.approx(80.0) and sig[-1].item() == pytest.approx(0.002)
    k = dd.karras_schedule(10)
    torch.testing.assert_close(k.sigmas, sig.flip(0))


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_derived_quantities_consistent(name):
    s = dd.get_schedule(name, T=200)
    ab = s.alpha_bar
    torch.testing.assert_close(torch.cumprod(1 - s.betas, 0), ab)
    torch.testing.assert_close(torch.sigmoid(s.log_snr), ab)
    torch.testing.assert_close(1 / (1 + s.sigmas ** 2), ab)
    assert (s.log_snr[1:] < s.log_snr[:-1]).all()


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing", "quadratic"])
def test_respace_keeps_alpha_bar_and_timesteps(spacing):
    s = dd.linear_schedule(1000)
    r = s.respace(37, spacing)
    assert len(r) == 37 and (r.timesteps[-1] == 999) == (spacing != "leading")
    torch.testing.assert_close(r.alpha_bar, s.alpha_bar[r.timesteps])
    # respaced betas are recomputed so that their cumulative product is alpha_bar again
    torch.testing.assert_close(torch.cumprod(1 - r.betas, 0), r.alpha_bar)
    assert (r.betas > s.betas[r.timesteps] - 1e-12).all()


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="beta_start must be > 0"):
        dd.linear_schedule(10, beta_start=0.0, beta_end=0.5)
    with pytest.raises(ValueError, match="beta_end must be > 0 and <= 1"):
        dd.linear_schedule(10, beta_start=0.1, beta_end=1.5)
    with pytest.raises(ValueError, match="betas must lie in"):
        dd.linear_schedule(10, beta_start=0.1, beta_end=1.0)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        dd.cosine_schedule(0)
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        dd.get_schedule("cosin")
    with pytest.raises(ValueError, match="steps <= 10"):
        dd.linear_schedule(10).respace(11)
    with pytest.raises(ValueError, match="non-increasing"):
        dd.NoiseSchedule(torch.tensor([0.5, 0.9]), torch.arange(2))
    with pytest.raises(ValueError, match="not in this schedule"):
        dd.linear_schedule(100).respace(10).index_of(torch.tensor([5]))


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 10, 30, 50, 333])
def test_respace_names_match_diffusers(spacing, steps):
    """The spacing names mean what diffusers' DDIMScheduler means by them (Lin et al. 2024)."""
    import diffusers
    sch = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    theirs = sorted(int(t) for t in sch.timesteps)
    if steps == 1 and spacing != "trailing":
        theirs = [999]          # diffedu: one step is always the noisiest entry
    assert dd.linear_schedule(1000).respace(steps, spacing).timesteps.tolist() == theirs


def test_respace_spacing_by_hand():
    s = dd.linear_schedule(1000)
    assert s.respace(50, "leading").timesteps[:3].tolist() == [0, 20, 40]
    assert s.respace(50, "leading").timesteps[-1] == 980
    assert s.respace(50, "trailing").timesteps[:2].tolist() == [19, 39]
    assert s.respace(50, "trailing").timesteps[-1] == 999


def test_locate_is_log_snr_interpolation():
    s = dd.linear_schedule(100)
    for i in (0, 17, 99):                                   # an entry is found exactly
        assert s.locate(float(s.alpha_bar[i])) == (i, 0.0)
    lam = 0.3 * s.log_snr[40] + 0.7 * s.log_snr[41]        # 70% of the way from 40 to 41
    lo, w = s.locate(float(torch.sigmoid(lam)))
    assert lo == 40 and abs(w - 0.7) < 1e-9
    assert s.locate(1.0) == (0, 0.0) and s.locate(1e-12) == (99, 0.0)
    assert s.nearest(float(torch.sigmoid(lam))) == 41
    torch.testing.assert_close(s.alpha_bar_of(torch.tensor([5, 7]), torch.zeros(2, 3, 4)).squeeze(),
                               s.alpha_bar[[5, 7]].float())
