"""Chapter 10's building blocks against exact references: the degradation pipeline (blur vs the
FFT Blur operator, DCT vs scipy, JPEG vs Pillow), kernels, Blind-DPS against chapter 09's DPS,
BIRD's cheap Jacobian against its closed form, StableSR's and the ControlNet's identity at
initialisation, DiffBIR's region weight; bad inputs give clear errors."""
import math

import numpy as np
import pytest
import torch

import diffedu as dd
from diffedu import inverse as inv
from diffedu.inverse.blind import bird, blind_dps, degrade, diffbir, kernels, stablesr

G = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("kind", kernels.KINDS)
def test_random_kernels_are_normalised_and_seeded(kind):
    k1, info = kernels.random_kernel(7, G(3), kinds=(kind,))
    k2, _ = kernels.random_kernel(7, G(3), kinds=(kind,))
    assert info["kind"] == kind and torch.equal(k1, k2)
    assert k1.shape == (7, 7) and (k1 >= 0).all() and abs(float(k1.sum()) - 1) < 1e-5


def test_gaussian_and_defocus_closed_forms():
    iso = kernels.gaussian_kernel2d(9, 1.3)
    torch.testing.assert_close(iso, inv.gaussian_kernel(9, 1.3))                   # isotropic = chapter 07's
    rot = kernels.gaussian_kernel2d(9, 2.0, 0.7, theta=math.pi / 2)                 # long axis turned to vertical
    torch.testing.assert_close(rot, kernels.gaussian_kernel2d(9, 0.7, 2.0), atol=1e-7, rtol=0)
    torch.testing.assert_close(rot, kernels.gaussian_kernel2d(9, 2.0, 0.7).T, atol=1e-7, rtol=0)
    disk = kernels.defocus_kernel(15, 5.0)                                          # area pi r^2, up to the edge
    support = (disk > 0.5 * disk.max()).sum().item()
    assert abs(support - math.pi * 25) < 10


def test_kernel_image_round_trip_and_error():
    k = kernels.kernel_dataset(5, 7, seed=1)
    torch.testing.assert_close(kernels.image_to_kernel(kernels.kernel_to_image(k)), k)
    assert kernels.kernel_error(k, k).abs().max() == 0
    assert torch.allclose(kernels.kernel_error(2 * k, k), torch.ones(5))
    flat = kernels.image_to_kernel(-torch.ones(7, 7))                               # empty image -> delta
    assert flat[3, 3] == 1 and flat.sum() == 1


@pytest.mark.parametrize("size", [2, 4, 1, 17, 7.5])
def test_kernel_size_out_of_range(size):
    with pytest.raises((ValueError, TypeError), match="size"):
        kernels.random_kernel(size, G())


# ----------------------------------------------------------------------------- operations
def test_blur_equals_blur_operator_and_is_differentiable_in_the_kernel():
    x = torch.randn(3, 2, 12, 12, generator=G(), dtype=torch.float64)
    k = kernels.kernel_dataset(3, 5, seed=2).double()
    y = degrade.blur(x, k)
    for i in range(3):
        torch.testing.assert_close(y[i:i + 1], inv.Blur(k[i], 12, 2).A(x[i:i + 1]))
    kk = k.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: degrade.blur(x[:1, :1, :6, :6], a), (kk[:1, :3, :3],))


def test_dct_matrix_matches_scipy_and_quant_table_is_the_standard():
    from scipy.fft import dct
    M = degrade.dct_matrix(8)
    v = np.random.default_rng(0).normal(size=8)
    np.testing.assert_allclose(M.numpy() @ v, dct(v, norm="ortho"), atol=1e-12)
    torch.testing.assert_close(degrade.quant_table(50), degrade.JPEG_LUMINANCE)      # q = 50: the table itself
    assert (degrade.quant_table(100) == 1).all()


def test_jpeg_close_to_pillow():
    from PIL import Image
    g = G(1)
    x = (torch.nn.functional.avg_pool2d(torch.rand(1, 1, 32, 32, generator=g), 3, 1, 1) * 2 - 1)
    for q in (30, 75):
        mine = degrade.jpeg(x, q)
        img = Image.fromarray(np.round(127.5 * (x[0, 0].numpy() + 1)).astype(np.uint8), mode="L")
        import io
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q, subsampling=0)
        pil = torch.tensor(np.asarray(Image.open(buf)), dtype=torch.float32) / 127.5 - 1
        err_mine, err_pil = (mine[0, 0] - x[0, 0]).abs().mean(), (pil - x[0, 0]).abs().mean()
        assert (mine[0, 0] - pil).abs().mean() < 2.5 / 127.5                   # within ~2 grey levels of Pillow
        assert 0.5 < err_mine / err_pil < 2
    st = x.clone().requires_grad_(True)
    (g_st,) = torch.autograd.grad(degrade.jpeg(st, 50, straight_through=True).sum(), st)
    torch.testing.assert_close(g_st, torch.ones_like(x), atol=1e-4, rtol=0)      # straight-through: identity


def test_downsample_area_is_avgpool():
    x = torch.randn(2, 1, 16, 16, generator=G())
    torch.testing.assert_close(degrade.downsample(x, 2, "area"), torch.nn.functional.avg_pool2d(x, 2))


@pytest.mark.parametrize("kw, match", [
    (dict(sigma_range=(0.0, 0.5)), "sigma_range"), (dict(quality_range=(1, 50)), "quality_range"),
    (dict(kernel_size=8), "kernel_size"), (dict(factor=3), "factor"), (dict(ops=("blur", "sharpen")), "ops"),
    (dict(sigma_range=(0.1, 0.05)), "low <= high")])
def test_strengths_out_of_range(kw, match):
    with pytest.raises(ValueError, match=match):
        degrade.random_degradation(G(), **kw)


def test_operations_refuse_bad_strengths():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="quality"):
        degrade.jpeg(x, 101)
    with pytest.raises(ValueError, match="sigma"):
        degrade.add_noise(x, -0.1)
    with pytest.raises(ValueError, match="does not fit"):
        degrade.blur(x, torch.ones(9, 9) / 81)


def test_degrade_is_seeded_and_the_oracle_operator_is_the_noise_free_pipeline():
    x, y, degs = degrade.test_set("digits", 4, seed=5)
    x2, y2, _ = degrade.test_set("digits", 4, seed=5)
    assert torch.equal(y, y2) and y.shape == (4, 1, 8, 8)
    assert len({d.order for d in degrade.test_set("digits", 8, seed=6)[2]}) > 3          # random order
    op = degrade.PipelineOperator(degs, (1, 16, 16))
    clean = torch.cat([d.apply(x[i:i + 1], noise=False) for i, d in enumerate(degs)])
    torch.testing.assert_close(op.A(x), clean)
    sig = torch.tensor([d.sigma for d in degs])
    assert ((y - op.A(x)).pow(2).mean((1, 2, 3)).sqrt() < 3 * sig + 0.05).all()
    for name in ("shapes", "phantoms"):
        xs, ys, _ = degrade.test_set(name, 1, seed=10_000)
        assert xs.shape == (1, 1, 32, 32) and ys.shape == (1, 1, 16, 16)


# ----------------------------------------------------------------------------- Blind-DPS
def test_blind_dps_step_with_a_fixed_kernel_is_chapter_09s_dps_step():
    """A kernel denoiser that always returns one kernel image makes the kernel known: the image
    chain must then be DPS (chapter 09) with the Blur operator of that kernel, exactly."""
    sched = dd.linear_schedule(1000)
    Dx = dd.as_denoiser(lambda x, t: torch.tanh(1.3 * x), sched)
    k_true = kernels.kernel_dataset(1, 5, seed=4)[0].double()
    kimg = kernels.kernel_to_image(k_true).reshape(1, -1)
    Dk = dd.as_denoiser(lambda k, t: kimg.expand(len(k), -1).to(k.dtype), sched)
    x = torch.randn(2, 1, 8, 8, generator=G(), dtype=torch.float64)
    y = torch.randn(2, 1, 8, 8, generator=G(1), dtype=torch.float64)
    t = torch.full((2,), 500)
    ab, abp = float(sched.alpha_bar[500]), float(sched.alpha_bar[480])
    noise = torch.randn(2, 1, 8, 8, generator=G(2), dtype=torch.float64)
    xp, _, x0, kern, rnorm = blind_dps.blind_dps_step(x, torch.zeros(2, 25, dtype=torch.float64), t, ab, abp, y, Dx,
                                                      Dk, zeta=0.7, zeta_k=0.0, lam=0.0, noise_x=noise,
                                                      noise_k=torch.zeros(2, 25, dtype=torch.float64))
    ref, ref_x0, ref_r = inv.dps_step(x, t, ab, abp, y, inv.Blur(k_true, 8, 1), Dx, 0.7, noise)
    torch.testing.assert_close(xp, ref)
    torch.testing.assert_close(rnorm, ref_r)
    torch.testing.assert_close(kern[0], k_true)


def test_blind_dps_kernel_gradient_matches_finite_differences():
    """The kernel chain's data gradient: d ||y - K(D_k(k)) * x0||^2 / dk by central differences."""
    sched = dd.linear_schedule(1000)
    x0 = torch.randn(1, 1, 8, 8, generator=G(), dtype=torch.float64)
    Dx = dd.as_denoiser(lambda x, t: x0.expand(len(x), -1, -1, -1), sched)
    Dk = dd.as_denoiser(lambda k, t: 0.5 * k, sched)
    kimg = torch.rand(1, 9, generator=G(1), dtype=torch.float64) * 2 - 0.5
    y = torch.randn(1, 1, 8, 8, generator=G(2), dtype=torch.float64)
    t = torch.full((1,), 300)
    ab = float(sched.alpha_bar[300])
    zero = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
    _, kp0, *_ = blind_dps.blind_dps_step(x0, kimg, t, ab, ab, y, Dx, Dk, zeta=0, zeta_k=0, lam=0,
                                          noise_x=zero(1, 1, 8, 8), noise_k=zero(1, 9))
    _, kp1, _, _, r = blind_dps.blind_dps_step(x0, kimg, t, ab, ab, y, Dx, Dk, zeta=0, zeta_k=1.0, lam=0,
                                               noise_x=zero(1, 1, 8, 8), noise_k=zero(1, 9))
    grad = (kp0 - kp1) * r                                                          # zeta_k / ||r|| undone

    def L(v):
        k = kernels.image_to_kernel((0.5 * v).reshape(1, 3, 3))
        return (y - degrade.blur(x0, k)).pow(2).sum()
    h = 1e-6
    fd = torch.stack([(L(kimg + h * e) - L(kimg - h * e)) / (2 * h) for e in torch.eye(9, dtype=torch.float64)])
    torch.testing.assert_close(grad[0], fd, atol=1e-5, rtol=1e-5)


def test_blind_dps_runs_and_refuses_bad_input():
    sched = dd.linear_schedule(1000)
    Dx = dd.as_denoiser(lambda x, t: 0.9 * x, sched)
    Dk = dd.as_denoiser(lambda k, t: 0.9 * k, sched)
    y = torch.randn(2, 1, 8, 8, generator=G())
    x, k, ks, x0s = blind_dps.blind_dps(y, Dx, Dk, sched, kernel_size=5, steps=4, generator=G(), return_trajectory=True)
    assert x.shape == (2, 1, 8, 8) and k.shape == (2, 5, 5) and ks.shape == (4, 2, 5, 5)
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(2))
    with pytest.raises(ValueError, match="kernel_size"):
        blind_dps.blind_dps(y, Dx, Dk, sched, kernel_size=6, steps=4)
    with pytest.raises(ValueError, match="zeta"):
        blind_dps.blind_dps(y, Dx, Dk, sched, zeta=-1.0, steps=4)


# ----------------------------------------------------------------------------- BIRD
def test_sphere_projection():
    z = torch.randn(3, 2, 4, 5, generator=G()) * 3
    p = bird.project_sphere(z)
    torch.testing.assert_close(p.flatten(1).norm(dim=1), torch.full((3,), math.sqrt(40)))
    torch.testing.assert_close(p / p.flatten(1).norm(dim=1)[:, None, None, None],
                               z / z.flatten(1).norm(dim=1)[:, None, None, None])
    with pytest.raises(ValueError, match="zero row"):
        bird.project_sphere(torch.zeros(1, 4))


def test_cheap_jacobian_is_the_telescoped_coefficient():
    """With eps_hat held constant, d G / d z = 1 / sqrt(alpha_bar_T) I (closed form); with a
    network whose eps does not depend on x (zero Jacobian) the full gradient is the same."""
    sched = dd.linear_schedule(1000)
    D = dd.as_denoiser(lambda x, t: torch.tanh(x), sched)
    z = torch.randn(2, 1, 4, 4, generator=G(), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(bird.ddim_map(z, D, sched, 10, cheap=True).sum(), z)
    f = bird.cheap_gradient_factor(sched, 10)
    torch.testing.assert_close(g, torch.full_like(g, f))
    assert abs(f - 1 / float(sched.respace(10).alpha_bar[-1]) ** 0.5) < 1e-12
    const = torch.randn(2, 1, 4, 4, generator=G(1), dtype=torch.float64)
    eps_const = dd.as_denoiser(lambda x, t: (x - (1 - sched.alpha_bar[t][:, None, None, None].double()) ** 0.5 * const)
                               / sched.alpha_bar[t][:, None, None, None].double() ** 0.5, sched)
    cos, full, cheap = bird.gradient_check(torch.zeros(2, 1, 4, 4, dtype=torch.float64), lambda v: v, eps_const,
                                           sched, z.detach())
    torch.testing.assert_close(full, cheap)
    assert (cos > 1 - 1e-9).all()
    cos_t, full_t, cheap_t = bird.gradient_check(torch.zeros(2, 1, 4, 4, dtype=torch.float64), lambda v: v, D, sched,
                                                 z.detach())
    assert (cos_t < 1 - 1e-3).all() and (cos_t > -1).all()          # a network with a Jacobian: they differ


def test_bird_blind_runs_keeps_the_sphere_and_lowers_the_loss():
    sched = dd.linear_schedule(1000)
    D = dd.as_denoiser(lambda x, t: torch.tanh(x), sched)
    y = degrade.blur(torch.rand(2, 1, 8, 8, generator=G()) * 2 - 1, inv.gaussian_kernel(5, 1.0))
    losses = []
    x, k = bird.bird(y, D, sched, kernel_size=5, steps=3, iters=8, lr=0.1, generator=G(),
                     callback=lambda info: losses.append(info["loss"]))
    assert x.shape == y.shape and k.shape == (2, 5, 5)
    torch.testing.assert_close(k.sum((1, 2)), torch.ones(2))
    assert losses[-1].sum() < losses[0].sum()
    with pytest.raises(ValueError, match="operator"):
        bird.bird(y, D, sched)


# ----------------------------------------------------------------------------- StableSR, DiffBIR
def test_block_specs_match_the_unet():
    from diffedu.nets.unet import unet_tiny
    u = unet_tiny(num_classes=10)
    feats = u.features(torch.randn(1, 1, 16, 16), 3, torch.tensor([1]))
    for name, ch, level in stablesr.block_specs(16, (1, 2, 2), 1):
        assert feats[name].shape[1:] == (ch, 16 >> level, 16 >> level), name


def test_stablesr_is_the_prior_at_init_and_at_w0_and_removes_its_hooks():
    from diffedu.nets.unet import unet_tiny
    torch.manual_seed(0)
    u = unet_tiny(num_classes=10).eval()
    for p in u.parameters():                     # a non-trivial network (zero-init convs made random)
        torch.nn.init.normal_(p, std=0.1)
    enc = stablesr.TimeAwareEncoder()
    x, y, c = torch.randn(4, 1, 16, 16, generator=G()), torch.randn(2, 1, 8, 8, generator=G(1)), torch.full((4,), 10)
    with torch.no_grad():
        base = u(x, 100, c)
        with stablesr.modulated(u, enc, y, 1.0) as net:
            torch.testing.assert_close(net(x, 100, c), base)                     # zero heads: identity
        for head in enc.heads.values():
            torch.nn.init.normal_(head.weight, std=0.5)
        with stablesr.modulated(u, enc, y, 0.0) as net:
            torch.testing.assert_close(net(x, 100, c), base)                     # w = 0: the prior
        with stablesr.modulated(u, enc, y, 1.0) as net:
            assert (net(x, 100, c) - base).abs().max() > 1e-3                    # w > 0: modulated
        torch.testing.assert_close(u(x, 100, c), base)                           # hooks gone
    assert not u._forward_pre_hooks and not any(b._forward_hooks for b in u.modules())


def test_edge_magnitude_and_region_weight():
    ramp = torch.arange(8.0).repeat(8, 1)[None, None] * 0.1                      # slope 0.1 per pixel
    torch.testing.assert_close(diffbir.edge_magnitude(ramp)[..., 1:-1], torch.full((1, 1, 8, 6), 0.1))
    W = diffbir.region_weight(ramp, 0.1)
    torch.testing.assert_close(W[..., 1:-1], torch.full((1, 1, 8, 6), 1 - math.tanh(1.0)))
    assert (diffbir.region_weight(torch.zeros(1, 1, 8, 8)) == 1).all()
    with pytest.raises(ValueError, match="scale"):
        diffbir.region_weight(ramp, 0.0)


def test_region_guided_denoiser():
    sched = dd.linear_schedule(1000)
    D = dd.as_denoiser(lambda x, t: torch.tanh(x), sched)
    x, z = torch.randn(2, 1, 8, 8, generator=G()), torch.rand(2, 1, 8, 8, generator=G(1))
    torch.testing.assert_close(diffbir.region_guided(D, z, 0.0)(x, 400), D(x, 400))
    torch.testing.assert_close(diffbir.region_guided(D, z, 1.0, weight=torch.ones_like(z))(x, 400), z)
    Wt = diffbir.region_weight(z)
    torch.testing.assert_close(diffbir.region_guided(D, z, 0.5)(x, 400), D(x, 400) + 0.5 * Wt * (z - D(x, 400)))


def test_controlnet_adapter_is_identity_at_init():
    from diffedu.nets.control import ControlledUNet, ControlNet
    prior = dd.pretrained_denoiser("unet_digits")
    model = ControlledUNet(prior.model, ControlNet(prior.model, 1))
    x, hint = torch.randn(2, 1, 16, 16, generator=G()), torch.rand(2, 1, 16, 16, generator=G(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x, 300, torch.full((2,), 10), hint), prior.model(x, 300, torch.full((2,), 10)))


def test_stage1_starts_as_bicubic():
    torch.manual_seed(0)
    s1 = diffbir.Stage1Restorer()
    y = torch.randn(2, 1, 8, 8, generator=G())
    with torch.no_grad():
        torch.testing.assert_close(s1(y), torch.nn.functional.interpolate(y, scale_factor=2, mode="bicubic"))
