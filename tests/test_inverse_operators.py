"""Measurement operators: adjointness (one test over every operator), pseudo-inverse
identities, SVD reconstruction, each operator against a direct computation, masks, kernels
and input errors. Tiny float64 tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

import diffedu.inverse as inv


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


OPERATORS = {
    "dense_wide": lambda: inv.Dense(torch.randn(6, 9, generator=_gen(1))),
    "dense_tall": lambda: inv.Dense(torch.randn(9, 6, generator=_gen(2))),
    "sr_avgpool": lambda: inv.SuperResolution(2, 8, mode="avgpool", channels=2),
    "sr_bicubic": lambda: inv.SuperResolution(2, (8, 12), mode="bicubic", channels=2),
    "inpaint_random": lambda: inv.Inpainting(inv.random_mask(8, 0.5, seed=1), channels=2),
    "inpaint_box": lambda: inv.Inpainting(inv.box_mask(8)[None].expand(2, 8, 8)),
    "blur_gaussian": lambda: inv.Blur(inv.gaussian_kernel(3, 1.0), (8, 9), channels=2),
    "blur_motion": lambda: inv.Blur(inv.motion_kernel(5, seed=3), (8, 9), channels=2),
    "turbulence": lambda: inv.Turbulence(8, strength=1.0, channels=1),
    "ct_sparse": lambda: inv.ParallelBeamCT(8, inv.sparse_view_angles(5)),
    "ct_limited": lambda: inv.ParallelBeamCT(8, inv.limited_angle(4, 90), n_detectors=12),
    "mri_random": lambda: inv.SingleCoilMRI(inv.cartesian_mask(8, 2, 0.25, kind="random", seed=1)),
    "mri_equispaced": lambda: inv.SingleCoilMRI(inv.cartesian_mask((8, 6), 2, 0.25)),
    "mri_multicoil": lambda: inv.MultiCoilMRI(inv.cartesian_mask(8, 2, 0.25), inv.coil_sensitivities(3, 8)),
}
SVD_OPERATORS = [k for k in OPERATORS if k not in ("turbulence", "ct_sparse", "ct_limited", "mri_multicoil")]


def _xy(op, seed=0, B=2):
    g = _gen(seed)
    x = torch.randn((B,) + op.in_shape, generator=g, dtype=torch.float64)
    y = torch.randn((B,) + op.out_shape, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("name", OPERATORS)
def test_adjointness(name):
    """<A x, y> = <x, A^T y> on random x, y."""
    op = OPERATORS[name]()
    x, y = _xy(op)
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.A_adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
    assert op.adjointness_test() < 1e-10


def test_every_linear_operator_is_in_the_adjointness_test():
    """A new linear operator (CT, MRI, ...) exported by diffedu.inverse.operators must join
    OPERATORS above, so that the parametrized tests run on it."""
    import diffedu.inverse.operators as ops
    exported = [getattr(ops, n) for n in ops.__all__]
    linear = {c for c in exported if isinstance(c, type) and issubclass(c, ops.LinearOperator)
              and c is not ops.LinearOperator}
    tested = {type(make()) for make in OPERATORS.values()}
    assert linear, "no linear operators found"
    assert linear <= tested, f"not in OPERATORS: {sorted(c.__name__ for c in linear - tested)}"


def test_operators_package_keeps_its_public_names():
    """The split into base / linear / nonlinear / masks keeps `from diffedu.inverse.operators
    import X` and `diffedu.inverse.X` working for every public name."""
    import diffedu as dd
    import diffedu.inverse.operators as ops
    names = {"Operator", "LinearOperator", "Dense", "SuperResolution", "Inpainting", "Blur",
             "Turbulence", "PhaseRetrieval", "conjugate_gradient", "box_mask", "random_mask",
             "freeform_mask", "gaussian_kernel", "motion_kernel", "ParallelBeamCT", "fbp", "limited_angle",
             "sparse_view_angles", "SingleCoilMRI", "MultiCoilMRI", "cartesian_mask", "coil_sensitivities",
             "root_sum_of_squares", "zero_filled"}
    assert set(ops.__all__) == names
    for n in names:
        assert getattr(dd.inverse, n) is getattr(ops, n)
    assert ops.Blur.__module__ == "diffedu.inverse.operators.linear"
    assert ops.PhaseRetrieval.__module__ == "diffedu.inverse.operators.nonlinear"
    assert ops.box_mask.__module__ == "diffedu.inverse.operators.masks"


@pytest.mark.parametrize("name", OPERATORS)
def test_pseudo_inverse_identities(name):
    """A A^+ A = A, and A^+ A A^+ = A^+ (exact with an SVD, CG for turbulence)."""
    op = OPERATORS[name]()
    x, y = _xy(op)
    Ax = op.A(x)
    if name == "turbulence":     # conjugate gradient: 100 steps get within ~1e-3
        assert (op.A(op.A_dagger(Ax, iters=100)) - Ax).norm() <= 2e-3 * Ax.norm()
    else:
        assert (op.A(op.A_dagger(Ax)) - Ax).norm() <= 1e-9 * Ax.norm()
    if op.has_svd:
        Ad = op.A_dagger(y)
        assert torch.allclose(op.A_dagger(op.A(Ad)), Ad, atol=1e-9)
    assert op(x).shape == Ax.shape and torch.equal(op(x), Ax)   # __call__ is A


@pytest.mark.parametrize("name", SVD_OPERATORS)
def test_svd_reconstructs_operator(name):
    op = OPERATORS[name]()
    x, y = _xy(op)
    n, m = math.prod(op.in_shape), math.prod(op.out_shape)
    s = op.singular_values()
    assert s.shape == (n,) and bool((s >= 0).all())
    assert bool((s[min(n, m):] == 0).all())                       # zeros pad the null space
    torch.testing.assert_close(op.svd_A(x), op.A(x))              # U diag(s) V^T x = A x
    torch.testing.assert_close(op.V(op.V_T(x)), x)                # V orthogonal
    torch.testing.assert_close(op.U(op.U_T(y)), y)                # U orthogonal
    assert op.V_T(x).shape == (2, n) and op.U_T(y).shape == (2, m)
    torch.testing.assert_close(op.V_T(x).norm(dim=1), x.flatten(1).norm(dim=1))
    # A^T y = V(s * U^T y)
    k = min(n, m)
    c = x.new_zeros(2, n)
    c[:, :k] = s[:k] * op.U_T(y)[:, :k]
    torch.testing.assert_close(op.V(c), op.A_adjoint(y))
    assert op.norm() == pytest.approx(float(s.max()))


@pytest.mark.parametrize("name", OPERATORS)
def test_solve_normal(name):
    """solve_normal(b, mu) inverts A^T A + mu I."""
    op = OPERATORS[name]()
    x, _ = _xy(op)
    b = op.A_adjoint(op.A(x)) + 0.3 * x
    torch.testing.assert_close(op.solve_normal(b, 0.3), x, atol=1e-6, rtol=1e-6)


def test_float32_input_gives_float32():
    op = OPERATORS["blur_motion"]()
    x, y = _xy(op)
    x32 = x.float()
    for out in (op.A(x32), op.A_adjoint(x32), op.A_dagger(x32), op.V(op.V_T(x32)), op.U(op.U_T(x32))):
        assert out.dtype == torch.float32
    torch.testing.assert_close(op.A(x32), op.A(x).float(), atol=1e-5, rtol=1e-5)


def test_dense_matches_linalg():
    H = torch.randn(5, 7, generator=_gen(0), dtype=torch.float64)
    op = inv.Dense(H)
    x = torch.randn(3, 7, generator=_gen(1), dtype=torch.float64)
    y = torch.randn(3, 5, generator=_gen(2), dtype=torch.float64)
    torch.testing.assert_close(op.A(x), x @ H.T)
    torch.testing.assert_close(op.A_dagger(y), y @ torch.linalg.pinv(H).T)
    torch.testing.assert_close(op.singular_values()[:5], torch.linalg.svdvals(H))


def test_superresolution_avgpool_is_block_mean():
    op = inv.SuperResolution(4, 8, mode="avgpool", channels=3)
    x = torch.randn(2, 3, 8, 8, generator=_gen(0), dtype=torch.float64)
    torch.testing.assert_close(op.A(x), F.avg_pool2d(x, 4))
    s = op.singular_values()
    m = 3 * 2 * 2
    torch.testing.assert_close(s[:m], torch.full((m,), 0.25, dtype=torch.float64))   # 1 / factor
    # A^+ of the block mean is nearest-neighbour upsampling
    y = torch.randn(2, 3, 2, 2, generator=_gen(1), dtype=torch.float64)
    torch.testing.assert_close(op.A_dagger(y), y.repeat_interleave(4, -2).repeat_interleave(4, -1))


def test_superresolution_bicubic_keeps_constants_and_is_smooth():
    op = inv.SuperResolution(2, 16, mode="bicubic", channels=1)
    x = torch.full((1, 1, 16, 16), 0.3, dtype=torch.float64)
    torch.testing.assert_close(op.A(x), torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64))
    # a linear ramp away from the border is downsampled to the ramp at the new pixel centres
    ramp = torch.arange(16, dtype=torch.float64).expand(1, 1, 16, 16)
    y = op.A(ramp)[0, 0, 4, 2:6]
    torch.testing.assert_close(y, torch.tensor([4.5, 6.5, 8.5, 10.5], dtype=torch.float64))


def test_blur_is_circular_convolution():
    k = inv.motion_kernel(3, seed=0).double()
    op = inv.Blur(k, (6, 7), channels=1)
    x = torch.randn(1, 1, 6, 7, generator=_gen(0), dtype=torch.float64)
    ref = torch.zeros_like(x)
    for a in range(3):                     # y[i, j] = sum_ab k[a, b] x[i - a + 1, j - b + 1]
        for b in range(3):
            ref += k[a, b] * torch.roll(x, shifts=(a - 1, b - 1), dims=(-2, -1))
    torch.testing.assert_close(op.A(x), ref)
    # singular values are |FFT(kernel)|
    pad = torch.zeros(6, 7, dtype=torch.float64)
    pad[:3, :3] = k
    want = torch.fft.fft2(pad).abs().flatten().sort().values
    torch.testing.assert_close(op.singular_values().sort().values, want)


def test_inpainting_measure_masks_noise_and_mask_shapes():
    mask = inv.box_mask(8, 4)
    op = inv.Inpainting(mask, channels=3)
    assert op.in_shape == (3, 8, 8)
    x = torch.zeros(2, 3, 8, 8)
    y = op.measure(x, 0.5, _gen(0))
    assert bool((y[:, :, 2:6, 2:6] == 0).all()) and y.abs().sum() > 0
    assert op.singular_values().sum() == 3 * (64 - 16)
    with pytest.raises(ValueError, match="mask must have"):
        inv.Inpainting(torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="only 0"):
        inv.Inpainting(torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 8, 8\)"):
        op.A(torch.zeros(1, 3, 8, 9))


def test_masks():
    assert inv.box_mask(8).sum() == 64 - 16
    assert torch.equal(inv.box_mask(16, 5, seed=3), inv.box_mask(16, 5, seed=3))
    assert inv.box_mask(16, 5, seed=3).sum() == 256 - 25
    m = inv.random_mask(64, 0.7, seed=0)
    assert abs(1 - m.mean().item() - 0.7) < 0.03                  # p = fraction missing
    assert torch.equal(m, inv.random_mask(64, 0.7, seed=0))
    assert not torch.equal(m, inv.random_mask(64, 0.7, seed=1))
    f = inv.freeform_mask(32, seed=0)
    assert f.shape == (32, 32) and 0 < f.mean() < 1 and torch.equal(f, inv.freeform_mask(32, seed=0))
    with pytest.raises(ValueError, match="p "):
        inv.random_mask(8, 1.5)
    with pytest.raises(ValueError, match="img_size"):
        inv.box_mask((8, 0))


def test_kernels():
    gk = inv.gaussian_kernel(7, 1.5)
    assert gk.shape == (7, 7) and abs(gk.sum().item() - 1) < 1e-6
    torch.testing.assert_close(gk, gk.T)
    torch.testing.assert_close(gk, gk.flip(0))
    mk = inv.motion_kernel(9, seed=1)
    assert mk.shape == (9, 9) and abs(mk.sum().item() - 1) < 1e-6 and bool((mk >= 0).all())
    assert torch.equal(mk, inv.motion_kernel(9, seed=1))
    assert not torch.equal(mk, inv.motion_kernel(9, seed=2))
    with pytest.raises(ValueError, match="sigma"):
        inv.gaussian_kernel(5, 0.0)


def test_turbulence_linear_and_reduces_to_blur():
    op = inv.Turbulence(8, strength=1.5, seed=2, channels=2)
    x, y = _xy(op)
    torch.testing.assert_close(op.A(2 * x - 3 * y), 2 * op.A(x) - 3 * op.A(y))
    flat = inv.Turbulence(8, strength=0.0, channels=2)            # no tilt: just the blur
    torch.testing.assert_close(flat.A(x), flat.blur.A(x))
    assert not torch.allclose(op.A(x), flat.A(x))
    with pytest.raises(NotImplementedError, match="no closed-form SVD"):
        op.V_T(x)


def test_phase_retrieval():
    op = inv.PhaseRetrieval(oversampling=2.0)
    x = torch.randn(2, 3, 5, 6, generator=_gen(0), dtype=torch.float64)
    y = op.A(x)
    assert y.shape == (2, 3, 10, 12) and bool((y >= 0).all())
    torch.testing.assert_close(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))   # Parseval
    torch.testing.assert_close(op.A(-x), y)                       # the sign is lost
    assert op.measure(x, 0.1, _gen(0)).shape == y.shape
    with pytest.raises(NotImplementedError, match="nonlinear"):
        op.A_adjoint(y)
    with pytest.raises(NotImplementedError, match="nonlinear"):
        op.A_dagger(y)
    sized = inv.PhaseRetrieval(1.5, img_size=4, channels=1)
    assert sized.out_shape == (1, 6, 6)
    with pytest.raises(ValueError, match="oversampling"):
        inv.PhaseRetrieval(0.5)


def test_measure_noise_and_reproducibility():
    op = inv.SuperResolution(2, 8, channels=1)
    x = torch.zeros(4000, 1, 8, 8)
    y = op.measure(x, 0.1, _gen(5))
    assert abs(y.std().item() - 0.1) < 2e-3
    torch.testing.assert_close(y, op.measure(x, 0.1, _gen(5)))
    torch.testing.assert_close(op.measure(x[:2], 0.0), op.A(x[:2]))


def test_bad_inputs_raise_clear_errors():
    op = inv.Blur(inv.gaussian_kernel(3, 1.0), 8, channels=1)
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="sigma_y must be"):
        op.measure(x, -0.1)
    with pytest.raises(TypeError, match="sigma_y"):
        op.measure(x, "0.1")
    with pytest.raises(ValueError, match=r"y must have shape \(B, 1, 8, 8\) for Blur"):
        op.A_adjoint(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="y must have shape"):
        op.A_dagger(torch.zeros(1, 8, 8))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        op.A(x.numpy())
    with pytest.raises(ValueError, match="unknown mode 'nearest'"):
        inv.SuperResolution(2, 8, mode="nearest")
    with pytest.raises(ValueError, match="divisible"):
        inv.SuperResolution(3, 8)
    with pytest.raises(ValueError, match="does not fit"):
        inv.Blur(inv.gaussian_kernel(9, 1.0), 8)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 64\)"):
        op.V(torch.zeros(1, 10))
    with pytest.raises(ValueError, match="mu must be"):
        op.solve_normal(x, 0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 9\)"):
        inv.Dense(torch.randn(6, 9)).A(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="mu must be a finite number"):
        op.solve_normal(x, float("nan"))
    with pytest.raises(ValueError, match="sigma_y must be a finite number"):
        op.measure(x, float("inf"))
    with pytest.raises(ValueError, match="strength must be >= 0"):
        inv.Turbulence(8, strength=-1.0)
    with pytest.raises(ValueError, match="correlation must be > 0"):
        inv.Turbulence(8, correlation=0.0)
    with pytest.raises(ValueError, match="intensity must be"):
        inv.motion_kernel(5, intensity=1.5)
    with pytest.raises(TypeError, match="sigma must be a real number"):
        inv.gaussian_kernel(5, "1")
