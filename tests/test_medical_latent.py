"""Chapter 11b: latent diffusion, ReSample and the patch prior (diffedu.medical.latent / resample / patches).

Every formula against a closed form or an exact reference: the resampling's mean and variance
against the product of two Gaussians (precision form, and Monte Carlo), hard data consistency
against the closed-form least-squares answer of an inpainting problem, ReSample with its data
terms switched off against plain DDIM, the patch average against the whole-image answer of a
pointwise denoiser. Tiny tensors; the shipped checkpoints are loaded once.
"""
import math

import pytest
import torch

import diffedu as dd
from diffedu.inverse.operators import Inpainting
from diffedu.medical import latent, patches, resample
from diffedu.medical.latent import LatentDiffusion

SCHED = dd.linear_schedule(1000)


def _gauss_denoiser():
    """The exact denoiser of N(0, I) data: E[x0 | x_t] = sqrt(ab) x_t (a one-component GMM in closed form)."""
    return dd.as_denoiser(lambda x, t: SCHED.alpha_bar_of(dd.denoiser.t_batch(t, x), x).sqrt() * x, SCHED)


class _IdentityAE(torch.nn.Module):
    def encode_latent(self, x):
        return x

    def decode(self, z):
        return z


def _identity_ldm(shape=(1, 4, 4)):
    """A 'latent' model whose autoencoder is the identity: latents are images."""
    return LatentDiffusion(_IdentityAE(), 1.0, _gauss_denoiser(), shape)


# ------------------------------------------------------------------ stochastic resampling

def test_resample_variance_closed_form():
    # gamma (1 - ab_next) / ab_t (1 - ab_t / ab_next) = 40 * 0.2 / 0.5 * 0.375 = 6
    assert resample.resample_variance(0.5, 0.8, 40.0) == pytest.approx(6.0)
    assert resample.resample_variance(0.5, 1.0, 40.0) == 0.0          # the level after the last: no variance
    with pytest.raises(ValueError, match="ab_next"):
        resample.resample_variance(0.5, 0.4, 1.0)                    # ab_next below ab_t
    with pytest.raises(ValueError, match="gamma"):
        resample.resample_variance(0.5, 0.8, -1.0)


def test_stochastic_resample_is_the_gaussian_product():
    g = torch.Generator().manual_seed(0)
    z0, zp = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    ab, s2 = 0.3, 0.4
    # precision form of N(sqrt(ab) z0, (1 - ab) I) x N(zp, s2 I)
    prec = 1 / (1 - ab) + 1 / s2
    mu = (ab ** 0.5 * z0 / (1 - ab) + zp / s2) / prec
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, ab, s2, torch.zeros_like(z0)), mu)
    # the noise scale is the product's standard deviation
    one = torch.ones_like(z0)
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, ab, s2, one) - mu, one / prec ** 0.5)
    # limits: sigma^2 = 0 keeps the unconditional sample; ab = 1 the consistent one
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, ab, 0.0, None), zp)
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, 1.0, s2, None), z0)
    with pytest.raises(ValueError, match="noise"):
        resample.stochastic_resample(z0, zp, ab, s2, None)
    with pytest.raises(ValueError, match="one shape"):
        resample.stochastic_resample(z0, zp[:, :4], ab, s2, None)


def test_stochastic_resample_monte_carlo():
    g = torch.Generator().manual_seed(1)
    n = 200_000
    z0, zp = torch.full((n,), 1.0, dtype=torch.float64), torch.full((n,), -2.0, dtype=torch.float64)
    ab, s2 = 0.6, 0.25
    out = resample.stochastic_resample(z0, zp, ab, s2, torch.randn(n, generator=g, dtype=torch.float64))
    mean = (s2 * ab ** 0.5 * 1.0 + (1 - ab) * -2.0) / (s2 + 1 - ab)
    var = s2 * (1 - ab) / (s2 + 1 - ab)
    assert abs(out.mean().item() - mean) < 4 * (var / n) ** 0.5
    assert out.var().item() == pytest.approx(var, rel=0.02)


# ------------------------------------------------------------------ hard data consistency

def _inpainting(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(4, 4, generator=g) < 0.5).float()
    return Inpainting(mask, channels=1), mask, g


def test_latent_consistency_solves_least_squares():
    op, mask, g = _inpainting()
    y = op.A(torch.randn(2, 1, 4, 4, generator=g))
    z_init = torch.randn(2, 1, 4, 4, generator=g)
    stats = {}
    z = resample.latent_consistency(y, op, lambda v: v, z_init, iters=150, lr=0.1, stats=stats)
    # observed pixels reach y; Adam never moves a coordinate whose gradient is always 0
    torch.testing.assert_close(z * mask, y, atol=2e-3, rtol=0)
    torch.testing.assert_close(z * (1 - mask), z_init * (1 - mask))
    assert stats["decoder_calls"] == 150
    # early stopping: a sigma_y this large accepts the start at once (one decoder call)
    stats = {}
    resample.latent_consistency(y, op, lambda v: v, z_init, iters=50, sigma_y=10.0, stats=stats)
    assert stats["decoder_calls"] == 1


def test_pixel_consistency_closed_form():
    op, mask, g = _inpainting(1)
    y = op.A(torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) * 0.5)
    z_init = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) * 0.5
    lam = 0.3
    # (A^T A + lam I) x = A^T y + lam x_init with A^T A = diag(mask)
    want = ((mask * y + lam * z_init) / (mask + lam)).clamp(-1, 1)
    got = resample.pixel_consistency(y, op, lambda v: v, lambda v: v, z_init, lam=lam, iters=10)
    torch.testing.assert_close(got, want)


def test_consistency_entries():
    assert resample._consistency_entries(10, 2, 0.0) == {2, 4, 6, 8}
    assert resample._consistency_entries(10, 2, 0.5) == {2, 4}                # only entries below 5
    assert resample._consistency_entries(10, 0, 0.0) == set()


# ------------------------------------------------------------------ the whole sampler

def test_resample_without_data_terms_is_ddim():
    op, mask, g = _inpainting(2)
    ldm = _identity_ldm()
    y = op.A(torch.randn(3, 1, 4, 4, generator=g))
    z_T = torch.randn(3, 1, 4, 4, generator=g)
    stats = {}
    got = resample.resample(y, op, ldm, steps=10, zeta=0.0, every=0, z_T=z_T, stats=stats)
    want = dd.ddim(ldm.prior, z_T, SCHED, 10)
    torch.testing.assert_close(got, want)
    assert stats == {"prior_calls": 10, "decoder_calls": 11, "consistency_steps": 0}


def test_resample_counts_and_fits_the_data():
    op, mask, g = _inpainting(3)
    ldm = _identity_ldm()
    x = torch.randn(4, 1, 4, 4, generator=g) * 0.5
    y = op.A(x)
    stats = {}
    out = resample.resample(y, op, ldm, steps=20, zeta=0.5, every=2, skip=0.0, opt_iters=40, opt_lr=0.1,
                            generator=torch.Generator().manual_seed(0), stats=stats)
    assert stats["consistency_steps"] == 9 and stats["prior_calls"] == 20 + 9
    # with the data terms the observed pixels are matched far better than by the prior alone
    free = dd.ddim(ldm.prior, torch.randn(4, 1, 4, 4, generator=g), SCHED, 20)
    assert ((out - x) * mask).norm() < 0.3 * ((free - x) * mask).norm()
    with pytest.raises(ValueError, match="space"):
        resample.resample(y, op, ldm, space="image")
    with pytest.raises(ValueError, match="z_T"):
        resample.resample(y, op, ldm, z_T=torch.zeros(2, 1, 4, 4))


# ------------------------------------------------------------------ latent diffusion

def test_latent_scale_gives_unit_std():
    from diffedu.nets.autoencoder import Autoencoder
    torch.manual_seed(0)
    ae = Autoencoder(base_channels=8, channel_mult=(1, 2), latent_channels=2, kl=True).eval()
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    s = latent.latent_scale(ae, x, batch=4)
    with torch.no_grad():
        assert float((s * ae.encode_latent(x)).std()) == pytest.approx(1.0, rel=1e-5)


@pytest.fixture(scope="module")
def ldm():
    return latent.load_latent_diffusion()


def test_shipped_latent_model(ldm):
    test = dd.data.phantoms(16, size=32, seed=1).images                 # held-out phantoms (training: seed 0)
    with torch.no_grad():
        z = ldm.encode(test)
        rec = ldm.decode(z)
    assert z.shape == (16, *ldm.latent_shape) == (16, 4, 8, 8)
    assert 0.7 < float(z.std()) < 1.3                                   # scaled to unit variance
    assert float(dd.psnr(rec.clamp(-1, 1), test).mean()) > 25.0
    # the prior is a Denoiser over latents: eps_hat matches x0_hat (the contract's identity)
    D = latent.latent_denoiser()
    zt = dd.q_sample(z[:2], torch.tensor([300, 300]), D.schedule, torch.randn_like(z[:2]))
    x0, eps = D.x0_eps(zt, 300)
    ab = float(D.schedule.alpha_bar[300])
    torch.testing.assert_close(zt, ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps, atol=1e-5, rtol=1e-5)
    assert D.ldm.latent_shape == (4, 8, 8)
    with pytest.raises(ValueError, match="z must have shape"):
        ldm.decode(torch.zeros(1, 4, 4, 4))


# ------------------------------------------------------------------ patch prior

def test_random_patches_are_crops():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    p = patches.random_patches(x, 4, 5, g)
    g = torch.Generator().manual_seed(0)
    i, r, c = (torch.randint(0, n, (5,), generator=g) for n in (2, 5, 5))
    torch.testing.assert_close(p, torch.stack([x[i[k], :, r[k]:r[k] + 4, c[k]:c[k] + 4] for k in range(5)]))
    with pytest.raises(ValueError, match="p must be at most"):
        patches.random_patches(x, 9, 1)


def test_patch_denoiser_matches_a_pointwise_denoiser():
    D = _gauss_denoiser()                                     # pointwise: patches change nothing
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for p, s in [(4, 2), (4, 4), (8, 8), (6, 2)]:
        P = patches.patch_denoiser(D, p, s, chunk=3)
        x0, eps = P.x0_eps(x, 400)
        torch.testing.assert_close(x0, D(x, 400))
        torch.testing.assert_close(eps, D.eps(x, 400), atol=1e-5, rtol=1e-5)
    # a denoiser that answers 1 everywhere: the average over the overlaps is 1 (counts divide exactly)
    ones = patches.patch_denoiser(dd.as_denoiser(lambda v, t: torch.ones_like(v), SCHED), 4, 2)
    torch.testing.assert_close(ones(x, 10), torch.ones_like(x))
    # a patch-position dependent one: pixel (0, 0) is only in the first patch, pixel (3, 3) in four
    seen = dd.as_denoiser(lambda v, t: torch.arange(len(v), dtype=v.dtype)[:, None, None, None].expand_as(v), SCHED)
    out = patches.patch_denoiser(seen, 4, 2)(torch.zeros(1, 1, 8, 8), 10)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 3, 3] == (0 + 1 + 3 + 4) / 4      # 3 x 3 patches, row-major
    with pytest.raises(ValueError, match="tile a side"):
        patches.patch_denoiser(D, 4, 3)(x, 10)
    with pytest.raises(ValueError, match="stride must be at most"):
        patches.patch_denoiser(D, 4, 5)


def test_activation_bytes_counts_module_outputs():
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    n = patches.activation_bytes(lambda: net(torch.zeros(7, 3)))
    assert n == 7 * (5 + 5 + 2) * 4
    assert patches.patch_count(32, 16, 8) == 3 and math.isclose(patches.patch_count(64, 16, 16), 4)
