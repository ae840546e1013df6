"""CT and MRI operators (chapter 11): the Radon transform against scikit-image's radon/iradon,
exact adjoints, the single-coil SVD, masks, coil maps, baselines and bad inputs. Tiny tensors.
(deepinv, the issue's dev-only peer, is not installed here; scikit-image and numpy.fft are the
peers.)"""
import math

import numpy as np
import pytest
import torch

from diffedu.inverse.operators.ct import (FBP_FILTERS, ParallelBeamCT, fbp, limited_angle, signed_measurement,
                                          sparse_view_angles)
from diffedu.inverse.operators.mri import (MultiCoilMRI, SingleCoilMRI, cartesian_mask, coil_sensitivities,
                                           root_sum_of_squares, zero_filled)
from diffedu.inverse.posterior.ddrm import spectral_measurement

skt = pytest.importorskip("skimage.transform")


def _phantom(N):
    from skimage.data import shepp_logan_phantom
    return skt.resize(shepp_logan_phantom(), (N, N), anti_aliasing=True)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- CT

def test_radon_matches_skimage_on_shepp_logan():
    """Same geometry as skimage.transform.radon(circle=True): the sinograms agree to rounding,
    for equispaced and for arbitrary (unsorted, irregular) angles."""
    img = _phantom(32)
    for th in (sparse_view_angles(12).numpy(), np.array([3.7, 91.0, 45.5, 0.0, 179.9, 120.25])):
        op = ParallelBeamCT(32, th)
        mine = op.A(torch.tensor(img)[None, None])[0, 0].numpy()            # (V, D)
        peer = skt.radon(img, th, circle=True).T
        assert np.linalg.norm(mine - peer) / np.linalg.norm(peer) < 1e-10


@pytest.mark.parametrize("filt", FBP_FILTERS)
def test_fbp_close_to_skimage_iradon(filt):
    """FBP from the same sinogram: PSNR against the phantom within 1 dB of iradon's (our
    back-projector is the exact adjoint of bilinear sampling, iradon's linear interpolation:
    measured 0.1-0.5 dB apart at 32 x 32), and the two images within 8% of each other."""
    img = _phantom(32)
    th = sparse_view_angles(60).numpy()
    op = ParallelBeamCT(32, th)
    sino = skt.radon(img, th, circle=True)
    mine = fbp(torch.tensor(sino.T.copy())[None, None], op, filter=filt)[0, 0].numpy()
    peer = skt.iradon(sino, th, filter_name=filt, circle=True)
    g = np.arange(32) - 16
    inside = (g[:, None] ** 2 + g[None, :] ** 2) <= 16 ** 2
    psnr = lambda a: 10 * np.log10(1 / np.mean((a - img)[inside] ** 2))       # noqa: E731
    assert abs(psnr(mine) - psnr(peer)) < 1.0
    assert psnr(mine) > 22.0
    assert np.linalg.norm(mine - peer) / np.linalg.norm(peer) < 0.08


def test_ct_adjoint_exact_in_both_dtypes():
    op = ParallelBeamCT(16, limited_angle(7, 120))
    assert op.adjointness_test(dtype=torch.float64) < 1e-12
    assert op.adjointness_test(dtype=torch.float32) < 5e-6
    M = op._M.to_dense()                                                      # the matrix itself
    x = torch.randn(2, 1, 16, 16, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(op.A(x).reshape(2, -1), x.reshape(2, -1) @ M.T)


def test_ct_is_differentiable_with_the_adjoint_as_gradient():
    """d/dx 1/2 ||A x - y||^2 = A^T (A x - y), through autograd (what DPS needs)."""
    op = ParallelBeamCT(12, sparse_view_angles(5))
    x = torch.randn(2, 1, 12, 12, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 1, 5, 12, generator=_gen(2), dtype=torch.float64)
    (0.5 * (op.A(x) - y).pow(2).sum()).backward()
    torch.testing.assert_close(x.grad, op.A_adjoint(op.A(x.detach()) - y))


def test_ct_geometry_facts():
    """A constant image of ones seen at 0 degrees: each detector sums one image column; a
    ray outside the image sees nothing; the angle helpers."""
    op = ParallelBeamCT(8, [0.0], n_detectors=12)
    y = op.A(torch.ones(1, 1, 8, 8, dtype=torch.float64))[0, 0, 0]
    assert torch.equal(y[2:10], torch.full((8,), 8.0, dtype=torch.float64))   # offsets -4..3 hit columns 0..7
    assert torch.equal(y[:2], torch.zeros(2, dtype=torch.float64)) and y[10:].abs().sum() == 0
    torch.testing.assert_close(sparse_view_angles(4), torch.tensor([0.0, 45.0, 90.0, 135.0], dtype=torch.float64))
    assert float(limited_angle(6, 90).max()) == 75.0 and op.out_shape == (1, 1, 12)


def test_signed_measurement_is_the_measurement_of_the_signed_image():
    op = ParallelBeamCT(10, sparse_view_angles(4))
    u = torch.rand(3, 1, 10, 10, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(signed_measurement(op.A(u), op), op.A(2 * u - 1))


@pytest.mark.parametrize("angles, err", [([10.0, 180.0], ValueError), ([-1.0], ValueError), ([], ValueError),
                                         ([float("nan")], ValueError), ("abc", TypeError)])
def test_ct_bad_angles(angles, err):
    with pytest.raises(err, match="angles"):
        ParallelBeamCT(8, angles)


def test_ct_bad_inputs():
    op = ParallelBeamCT(8, sparse_view_angles(3))
    with pytest.raises(ValueError, match="x must have shape"):
        op.A(torch.zeros(1, 1, 9, 9))
    with pytest.raises(TypeError, match="floating-point"):
        op.A(torch.zeros(1, 1, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="filter"):
        fbp(torch.zeros(1, 1, 3, 8), op, filter="lanczos")
    with pytest.raises(ValueError, match="max_deg"):
        limited_angle(4, 200)
    with pytest.raises(TypeError, match="ParallelBeamCT"):
        fbp(torch.zeros(1, 1, 3, 8), SingleCoilMRI(torch.ones(8, 8)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (device check)")
def test_ct_on_cuda_matches_cpu():
    op = ParallelBeamCT(16, sparse_view_angles(6))
    x = torch.randn(2, 1, 16, 16, generator=_gen())
    torch.testing.assert_close(op.A(x.cuda()).cpu(), op.A(x), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(op.A_adjoint(op.A(x).cuda()).cpu(), op.A_adjoint(op.A(x)), rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------- MRI

def test_cartesian_masks():
    for kind in ("equispaced", "random"):
        m = cartesian_mask((12, 32), 4, 0.08, kind=kind, seed=3)
        assert m.shape == (12, 32) and bool((m == m[0]).all())                # whole columns
        cols = m[0]
        assert int(cols.sum()) == 8                                           # W / R
        assert bool(cols[15:18].all())                                        # round(0.08 * 32) = 3 centre columns
        assert torch.equal(m, cartesian_mask((12, 32), 4, 0.08, kind=kind, seed=3))
    eq = cartesian_mask(32, 8, 0.04)[0].nonzero()[:, 0]
    assert len(eq) == 4
    assert not torch.equal(cartesian_mask(64, 4, 0.08, kind="random", seed=0), cartesian_mask(64, 4, 0.08, kind="random", seed=1))
    with pytest.raises(ValueError, match="kind"):
        cartesian_mask(8, 2, 0.1, kind="radial")
    with pytest.raises(ValueError, match="acceleration"):
        cartesian_mask(8, 0.5, 0.1)


def test_single_coil_against_numpy_fft():
    """y = M . fftshift(fft2(x, norm='ortho')) as (Re, Im); A^T = Re ifft2(ifftshift(M . y))."""
    m = cartesian_mask((6, 8), 2, 0.25, kind="random", seed=1)
    op = SingleCoilMRI(m)
    x = torch.randn(2, 1, 6, 8, generator=_gen(), dtype=torch.float64)
    peer = np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1)) * m.numpy()
    y = op.A(x)
    np.testing.assert_allclose(y[..., 0].numpy(), peer.real, atol=1e-12)
    np.testing.assert_allclose(y[..., 1].numpy(), peer.imag, atol=1e-12)
    back = np.fft.ifft2(np.fft.ifftshift(peer, axes=(-2, -1)), norm="ortho").real
    np.testing.assert_allclose(op.A_adjoint(y).numpy(), back, atol=1e-12)


@pytest.mark.parametrize("kind", ["equispaced", "random"])
def test_single_coil_svd_is_exact(kind):
    """V orthonormal, U an orthogonal (m x m) matrix, A = U diag(s) V^T, s in {1, 1/sqrt 2, 0}
    with the count of each fixed by the mask's mirror pairs, A A^+ A = A, solve_normal exact."""
    H, W = 6, 8
    m = cartesian_mask((H, W), 2, 0.25, kind=kind, seed=2)
    op = SingleCoilMRI(m)
    n = H * W
    Vm = op.V_T(torch.eye(n, dtype=torch.float64).reshape(n, 1, H, W))        # rows: V^T e_j
    torch.testing.assert_close(Vm @ Vm.T, torch.eye(n, dtype=torch.float64))
    Um = op.U_T(torch.eye(2 * n, dtype=torch.float64).reshape(2 * n, 1, H, W, 2))
    torch.testing.assert_close(Um @ Um.T, torch.eye(2 * n, dtype=torch.float64))
    x = torch.randn(3, 1, H, W, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(op.svd_A(x), op.A(x))
    s = op.singular_values()
    mf = torch.fft.ifftshift(m)                                               # FFT layout
    mirror = torch.roll(torch.flip(mf, (0, 1)), (1, 1), (0, 1))               # M_{-k}
    want = ((mf + mirror) / 2).sqrt().flatten().sort().values
    torch.testing.assert_close(s.sort().values, want)
    torch.testing.assert_close(op.A(op.A_dagger(op.A(x))), op.A(x))
    b = torch.randn(3, 1, H, W, generator=_gen(4), dtype=torch.float64)
    z = op.solve_normal(b, 0.3)
    torch.testing.assert_close(op.A_adjoint(op.A(z)) + 0.3 * z, b)
    ybar, _, measured = spectral_measurement(op.A(x), op)                     # DDRM's view
    torch.testing.assert_close(ybar[:, measured], op.V_T(x)[:, measured])


def test_adjoints_and_complex_kspace_input():
    m = cartesian_mask(8, 4, 0.25, kind="random")
    S = coil_sensitivities(3, 8)
    for op in (SingleCoilMRI(m), MultiCoilMRI(m, S)):
        assert op.adjointness_test(dtype=torch.float64) < 1e-12
        assert op.adjointness_test(dtype=torch.float32) < 5e-6
        y = torch.randn((2,) + op.out_shape, generator=_gen(), dtype=torch.float64)
        torch.testing.assert_close(op.A_adjoint(torch.view_as_complex(y)), op.A_adjoint(y))


def test_coils_rss_and_zero_filled():
    """sum_c |S_c|^2 = 1; fully sampled, RSS (and zero-filled) return |x| exactly; the SENSE
    operator is then an isometry (||A x|| = ||x||)."""
    S = coil_sensitivities(4, (8, 10))
    torch.testing.assert_close(S.abs().pow(2).sum(0), torch.ones(8, 10, dtype=torch.float64))
    full = MultiCoilMRI(torch.ones(8, 10), S)
    x = torch.randn(2, 1, 8, 10, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(root_sum_of_squares(full.A(x), full), x.abs())
    torch.testing.assert_close(full.A(x).flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    one = SingleCoilMRI(torch.ones(8, 10))
    torch.testing.assert_close(zero_filled(one.A(x), one), x.abs())
    half = SingleCoilMRI(cartesian_mask((8, 10), 2, 0.2))
    assert bool((zero_filled(half.measure(x, 0.1, generator=_gen()), half) >= 0).all())


def test_measure_masks_the_noise():
    m = cartesian_mask(8, 4, 0.25)
    op = SingleCoilMRI(m)
    y = op.measure(torch.zeros(1, 1, 8, 8), sigma_y=1.0, generator=_gen())
    assert float(y[0, 0][m == 0].abs().max()) == 0.0 and float(y.abs().max()) > 0


def test_mri_bad_inputs():
    m = cartesian_mask(8, 2, 0.25)
    op = SingleCoilMRI(m)
    with pytest.raises(TypeError, match="real image"):
        op.A(torch.zeros(1, 1, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="x must have shape"):
        op.A(torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="y must have shape"):
        op.A_adjoint(torch.zeros(1, 1, 8, 8))                                  # no (Re, Im) axis
    with pytest.raises(ValueError, match="mask"):
        SingleCoilMRI(torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="mask must have 2 dimensions"):
        SingleCoilMRI(torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="sensitivities must have shape"):
        MultiCoilMRI(m, coil_sensitivities(2, 9))
    with pytest.raises(ValueError, match="sum_c"):
        MultiCoilMRI(m, 2 * coil_sensitivities(2, 8))
    with pytest.raises(TypeError, match="SingleCoilMRI or MultiCoilMRI"):
        zero_filled(torch.zeros(1, 1, 3, 8), ParallelBeamCT(8, [0.0, 60.0, 120.0]))
    assert math.isclose(float(op.norm()), 1.0)
