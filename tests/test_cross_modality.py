"""Chapter 11b: cross-modality translation (diffedu.medical.cross_modality).

The paired renderings against the phantoms they come from (same anatomy, the MR look-up table,
the Rician noise's closed-form mean), the image-conditioned U-Net against a plain U-Net on the
concatenated input, and the calibration numbers against cases whose answer is known.
"""
import math

import pytest
import torch

import diffedu as dd
from diffedu.medical import cross_modality as xm
from diffedu.nets.unet import UNet


@pytest.fixture(scope="module")
def pairs():
    return xm.paired_modalities(48, 32, seed=3)


def test_same_anatomy_other_contrast(pairs):
    ph = dd.data.phantoms(48, size=32, seed=3)
    torch.testing.assert_close(pairs.ct_clean, ph.images)                 # CT-like = the phantom's attenuation
    assert torch.equal(pairs.lesion, ph.masks) and torch.equal(pairs.brain, ph.brain)
    mr = (pairs.mr_clean + 1) / 2
    skull = ~ph.brain & (ph.images > 0)
    # contrast inversion: bone is the brightest tissue in CT and darker than brain in MR
    assert torch.allclose(mr[skull], torch.tensor(xm.MR_LEVELS["skull"]))
    assert float(mr[ph.brain & ~ph.masks].mean()) > 3 * xm.MR_LEVELS["skull"]
    # lesion signs: +-1 exactly where there is a lesion, and both signs occur
    has = ph.has_lesion.bool()
    assert torch.equal(pairs.lesion_sign != 0, has)
    assert {-1.0, 1.0} <= set(pairs.lesion_sign[has].tolist())
    # the lesion's MR contrast follows its sign
    for i in torch.nonzero(has)[:4, 0]:
        inside = mr[i][pairs.lesion[i]].mean()
        healthy = ((xm.MR_LEVELS["brain"] + xm.MR_LEVELS["inner"] * ((ph.healthy[i] + 1) / 2 - 0.3))[pairs.lesion[i]]
                   .clamp(0, 1).mean())
        assert torch.sign(inside - healthy) == pairs.lesion_sign[i]


def test_noise_models(pairs):
    bg = ~pairs.brain & (pairs.ct_clean < -0.99)                           # background, far from the skull
    ct_noise = ((pairs.ct - pairs.ct_clean) / 2)[pairs.brain]                # inside the brain nothing is clipped
    assert float(ct_noise.std()) == pytest.approx(xm.CT_NOISE, rel=0.05)
    assert abs(float(ct_noise.mean())) < 3 * xm.CT_NOISE / ct_noise.numel() ** 0.5
    # Rician noise on a zero signal is Rayleigh: mean sigma sqrt(pi / 2)
    mr_bg = ((pairs.mr + 1) / 2)[bg]
    assert float(mr_bg.mean()) == pytest.approx(xm.MR_NOISE * math.sqrt(math.pi / 2), rel=0.05)
    again = xm.paired_modalities(48, 32, seed=3)
    assert torch.equal(again.mr, pairs.mr) and torch.equal(again.ct, pairs.ct)      # one seed, one data set


def test_image_conditioned_unet_is_a_unet_on_concatenated_channels():
    torch.manual_seed(0)
    m = xm.ImageConditionedUNet(base_channels=8)
    ref = UNet(in_channels=2, out_channels=1, base_channels=8)
    ref.load_state_dict(m.state_dict())
    for p in (*m.parameters(), *ref.parameters()):                      # make the zero-initialised outputs non-trivial
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    ref.load_state_dict(m.state_dict())
    x, c, t = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16), torch.tensor([3, 700])
    torch.testing.assert_close(m(x, t, c), ref(torch.cat([x, c], 1), t))
    with pytest.raises(ValueError, match="cond is required"):
        m(x, t)
    with pytest.raises(ValueError, match="cond must have shape"):
        m(x, t, c[:1])
    # same size as the regression network, up to the first convolution's extra input channel
    n = lambda net: sum(p.numel() for p in net.parameters())                 # noqa: E731
    assert n(m) - n(xm.regression_unet()) == 9 * 8


def test_translate_and_regress_shapes():
    torch.manual_seed(0)
    m, r = xm.ImageConditionedUNet(base_channels=8).eval(), xm.regression_unet().eval()
    ct = torch.zeros(3, 1, 16, 16)
    s = xm.translate(m, ct, dd.linear_schedule(1000), samples=2, steps=2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 3, 1, 16, 16) and bool(s.isfinite().all())
    assert xm.regress(r, ct).shape == (3, 1, 16, 16)


def test_calibration_known_answers():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    # truth and 8 samples drawn from one N(m, s^2) per pixel (calibrated): the prediction interval
    # covers the truth 90 % of the time (1024 pixels: binomial std 0.009)
    s = 0.02 + 0.1 * torch.rand(4, 1, 16, 16, generator=g)
    m = truth - s * torch.randn(4, 1, 16, 16, generator=g)
    samples = m + s * torch.randn(8, 4, 1, 16, 16, generator=g)
    c = xm.calibration(samples, truth, level=0.9)
    assert abs(c["coverage"] - 0.9) < 0.03
    assert xm.calibration(m + 0.3 * s * torch.randn(8, 4, 1, 16, 16, generator=g), truth)["coverage"] < 0.6   # overconfident
    assert c["corr_std_error"] > 0.2                                    # larger spread, larger error of the mean
    assert c["psnr_mean"] == pytest.approx(float(dd.psnr(samples.mean(0), truth).mean()))
    assert c["psnr_single"] < c["psnr_mean"]                            # one sample is noisier than the mean
    assert c["std"] == pytest.approx(float(samples.std(0).mean()))
    # samples all equal to a wrong answer: no spread, no coverage
    c0 = xm.calibration(torch.zeros(3, 4, 1, 16, 16) + truth + 0.5, truth)
    assert c0["std"] == 0 and c0["coverage"] == 0
    with pytest.raises(ValueError, match="at least 2 samples"):
        xm.calibration(samples[:1], truth)
    with pytest.raises(ValueError, match="level"):
        xm.calibration(samples, truth, level=1.0)
    with pytest.raises(ValueError, match="samples must have shape"):
        xm.calibration(samples[:, :2], truth)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n"):
        xm.paired_modalities(0)
    with pytest.raises(ValueError, match="mr_noise"):
        xm.paired_modalities(2, mr_noise=-0.1)
    with pytest.raises(ValueError, match="channels"):
        xm.ImageConditionedUNet(channels=0)


def test_shipped_translation_models():
    from diffedu.train.checkpoints import checkpoint_path, load_model, read_manifest
    model = load_model(checkpoint_path("medical/xmod_diffusion"))
    reg = load_model(checkpoint_path("medical/xmod_regression"))
    assert isinstance(model, xm.ImageConditionedUNet) and read_manifest("medical/xmod_diffusion")["prediction"] == "x0"
    pairs = xm.paired_modalities(4, 32, seed=1)                            # held out (training: seed 0)
    r = xm.regress(reg, pairs.ct)
    # the regression is far closer to the MR image than the CT image itself is (a real translation)
    assert float(dd.psnr(r.clamp(-1, 1), pairs.mr).mean()) > float(dd.psnr(pairs.ct, pairs.mr).mean()) + 6


def test_widgets_redraw_and_check_inputs():
    import matplotlib
    matplotlib.use("Agg")
    from diffedu.viz.widgets.medical_latent import resample_explorer, xmod_viewer
    g = torch.Generator().manual_seed(0)
    ct, mr = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1, torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    box = xmod_viewer(ct, mr, mr * 0.5, mr + 0.1 * torch.randn(3, 2, 1, 8, 8, generator=g), image=1)
    box.sample_slider.value = 2                                          # a move re-draws the same figure
    assert box.figure.axes[3].get_title() == "sample 2"
    truth = mr[0]
    runs = {0: truth * 0.5, 5: truth.clone()}
    box = resample_explorer(runs, truth, {"FBP": truth * 0.0}, every=0)
    box.slider.value = 5
    assert "every 5" in box.figure.axes[-1].get_title() and "inf" in box.figure.axes[-1].get_title()
    with pytest.raises(ValueError, match="samples must have shape"):
        xmod_viewer(ct, mr, mr, torch.zeros(3, 2, 1, 4, 4))
    with pytest.raises(ValueError, match="truth's shape"):
        resample_explorer({5: torch.zeros(1, 4, 4)}, truth, {"FBP": truth})
