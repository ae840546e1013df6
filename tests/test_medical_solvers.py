"""Chapter 11's solvers (Song et al.'s measurement-consistent sampler, DDS) and exercises:
each reduces to a known sampler when its data step is switched off, its data step is checked
against closed forms (SVD pseudo-inverse, normal equations), and with an exact Gaussian prior
it returns data-consistent samples. Tiny tensors, a 100-step schedule."""
import pytest
import torch

import diffedu as dd
from diffedu.inverse.operators.ct import ParallelBeamCT, sparse_view_angles
from diffedu.inverse.operators.mri import SingleCoilMRI, cartesian_mask
from diffedu.inverse.operators.nonlinear import PhaseRetrieval
from diffedu.inverse.posterior.dds import dds, dds_data_step
from diffedu.inverse.posterior.song_mc import consistency_step, noisy_measurement, song_mc

SCHED = dd.linear_schedule(100, beta_start=1e-3, beta_end=0.2)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _gauss_denoiser(x, t):
    """E[x_0 | x_t] for x_0 ~ N(0, I): sqrt(ab) x_t (ab + 1 - ab = 1)."""
    ab = SCHED.alpha_bar.to(x.dtype)[SCHED.index_of(t)].reshape(-1, 1, 1, 1)
    return ab.sqrt() * x


def _mri(H=8, W=8, R=2, kind="random"):
    return SingleCoilMRI(cartesian_mask((H, W), R, 0.25, kind=kind, seed=1))


def _xy(op, B=2, seed=0):
    x = torch.randn((B,) + op.in_shape, generator=_gen(seed), dtype=torch.float64)
    return x, op.A(x)


def test_song_mc_without_blend_is_ddpm():
    """lam = 0 draws no measurement noise and skips the data step: exactly samplers.ddpm."""
    op = _mri()
    _, y = _xy(op)
    x_T = torch.randn(2, 1, 8, 8, generator=_gen(5), dtype=torch.float64)
    a = song_mc(y, op, _gauss_denoiser, SCHED, lam=0.0, steps=10, x_T=x_T, generator=_gen(1))
    b = dd.ddpm(dd.as_denoiser(_gauss_denoiser, SCHED), x_T, SCHED, steps=10, generator=_gen(1))
    torch.testing.assert_close(a, b)


def test_dds_without_cg_is_ddim_eta():
    op = _mri()
    _, y = _xy(op)
    x_T = torch.randn(2, 1, 8, 8, generator=_gen(5), dtype=torch.float64)
    a = dds(y, op, _gauss_denoiser, SCHED, steps=10, cg_iters=0, eta=0.85, x_T=x_T, generator=_gen(2))
    b = dd.ddim(dd.as_denoiser(_gauss_denoiser, SCHED), x_T, SCHED, steps=10, eta=0.85, generator=_gen(2))
    torch.testing.assert_close(a, b)


def test_noisy_measurement_is_the_forward_process_through_A():
    op = _mri()
    _, y = _xy(op)
    ab = 0.3
    z = torch.randn(2, 1, 8, 8, generator=_gen(7), dtype=torch.float64)
    torch.testing.assert_close(noisy_measurement(y, op, ab, _gen(7)), ab ** 0.5 * y + (1 - ab) ** 0.5 * op.A(z))
    torch.testing.assert_close(noisy_measurement(y, op, 1.0), y)


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_consistency_step_against_the_svd(lam):
    """x' = x + lam A^+ (y - A x): on measured spectral coordinates a lam-blend towards
    ybar, unmeasured ones untouched (SingleCoilMRI's exact SVD)."""
    op = _mri()
    x, _ = _xy(op, seed=1)
    xt, y = _xy(op, seed=2)
    xn = consistency_step(x, y, op, lam)
    s = op.singular_values()
    meas = s > 0
    vx, vn, vt = op.V_T(x), op.V_T(xn), op.V_T(xt)
    torch.testing.assert_close(vn[:, ~meas], vx[:, ~meas])
    torch.testing.assert_close(vn[:, meas], (1 - lam) * vx[:, meas] + lam * vt[:, meas])


def test_consistency_step_on_ct_reaches_the_data():
    op = ParallelBeamCT(12, sparse_view_angles(4))
    x, _ = _xy(op, seed=1)
    _, y = _xy(op, seed=2)
    xn = consistency_step(x, y, op, 1.0, cg_iters=60)
    assert float((op.A(xn) - y).norm() / y.norm()) < 1e-3 < float((op.A(x) - y).norm() / y.norm())


def test_dds_data_step_closed_forms():
    """Many CG steps from x0: gamma = 0 gives x0 + A^+ (y - A x0) (the least-squares solution
    nearest x0); gamma > 0 solves (A^T A + gamma I) x = A^T y + gamma x0; 0 steps return x0."""
    op = _mri(kind="equispaced")
    x0, _ = _xy(op, seed=3)
    _, y = _xy(op, seed=4)
    torch.testing.assert_close(dds_data_step(x0, y, op, cg_iters=20), x0 + op.A_dagger(y - op.A(x0)))
    g = 0.7
    want = op.solve_normal(op.A_adjoint(y) + g * x0, g)
    torch.testing.assert_close(dds_data_step(x0, y, op, cg_iters=20, gamma=g), want)
    assert torch.equal(dds_data_step(x0, y, op, cg_iters=0), x0)
    one = dds_data_step(x0.float(), y.float(), op, cg_iters=50)      # float32 in, no blow-up after convergence
    assert one.dtype == torch.float32 and float((op.A(one.double()) - y).norm()) < 1e-4


def test_solvers_with_an_exact_gaussian_prior_fit_the_data():
    """Prior N(0, I), noiseless single-coil MRI: DDS ends on a CG-exact x0 (A x = y); Song et
    al.'s sampler with lam = 1 lands on the data up to its last consistency level's noise,
    sqrt(1 - ab_0) ~ 3% (without the blend: ~100%); both fill the null space with
    prior-sized values (not zeros)."""
    op = _mri()
    xt, y = _xy(op, B=4, seed=6)
    a = dds(y, op, _gauss_denoiser, SCHED, steps=20, generator=_gen(1))
    assert float((op.A(a) - y).norm() / y.norm()) < 1e-6
    b = song_mc(y, op, _gauss_denoiser, SCHED, steps=50, generator=_gen(1))
    tol = 2 * (1 - float(SCHED.alpha_bar[0])) ** 0.5
    assert float((op.A(b) - y).norm() / y.norm()) < tol
    free = song_mc(y, op, _gauss_denoiser, SCHED, lam=0.0, steps=50, generator=_gen(1))
    assert float((op.A(free) - y).norm() / y.norm()) > 0.5
    null = op.singular_values() == 0
    for r in (a, b):
        assert 0.3 < float(op.V_T(r)[:, null].std()) < 1.5


def test_solver_bad_inputs():
    op = _mri()
    _, y = _xy(op)
    with pytest.raises(ValueError, match="lam"):
        song_mc(y, op, _gauss_denoiser, SCHED, lam=1.5)
    with pytest.raises(TypeError, match="linear operator"):
        dds(torch.zeros(1, 1, 8, 8), PhaseRetrieval(), _gauss_denoiser, SCHED)
    with pytest.raises(ValueError, match="cg_iters"):
        dds(y, op, _gauss_denoiser, SCHED, cg_iters=-1)
    with pytest.raises(ValueError, match="y must have shape"):
        song_mc(torch.zeros(1, 1, 8, 8), op, _gauss_denoiser, SCHED)
    with pytest.raises(ValueError, match="batch size"):
        consistency_step(torch.zeros(3, 1, 8, 8, dtype=torch.float64), y, op, 1.0)


def test_medical_exercises():
    from diffedu.exercises import medical
    medical._self_check()
    for name in ("radon_adjoint", "kspace_mask", "data_consistency"):
        assert dd.exercises.check(name, getattr(medical, name), verbose=False)
    wrong = lambda x, y_hat, mask, lam: medical.data_consistency(x, y_hat, mask, 1.0)   # noqa: E731
    assert not dd.exercises.check("data_consistency", wrong, verbose=False)
    off = lambda width, acceleration, n_center, offset: medical.kspace_mask(width, acceleration, n_center, 0)  # noqa: E731
    assert not dd.exercises.check("kspace_mask", off, verbose=False)
