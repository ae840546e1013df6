"""Exercises of chapters 07-08: inverse problems, classical regularisation and plug-and-play.

Notation: y = A x + sigma_y n; images (B, C, H, W); SVD A = U diag(s) V^T; HQS weight mu;
diffusion x_t = sqrt(ab) x0 + sqrt(1 - ab) eps.
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask(*shape, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) > 0.4).double()


# -- reference solutions (kept short: they are what `solution` prints) --------------------
# chapter 07
def inpainting_adjoint(mask, y):
    """A^T y for A x = mask * x: a 0/1 mask is diagonal, so A is its own adjoint."""
    return mask * y


def avgpool_adjoint(y, factor):
    """A^T y for f x f average pooling: copy each value over its block, divided by f^2."""
    return y.repeat_interleave(factor, -2).repeat_interleave(factor, -1) / factor**2


def tikhonov_filter(s, lam):
    """Filter factors of (A^T A + lam I)^{-1} A^T = V diag(phi / s) U^T."""
    return s**2 / (s**2 + lam)


def dual_ball_projection(p, lam):
    """Project each 2-vector p[..., :] onto {|p| <= lam} (the prox of TV's conjugate)."""
    return p / (p.norm(dim=-1, keepdim=True) / lam).clamp_min(1.0)


# chapter 08
def hqs_data_step_inpainting(z, y, mask, mu):
    """argmin_x ||y - mask * x||^2 + mu ||x - z||^2, pixel by pixel."""
    return (mask * y + mu * z) / (mask + mu)


def hqs_data_step_blur(z, y, kernel_fft, mu):
    """argmin_x ||y - k * x||^2 + mu ||x - z||^2 for a circular blur with FFT multiplier K."""
    K = kernel_fft
    X = (K.conj() * torch.fft.fft2(y) + mu * torch.fft.fft2(z)) / (K.abs() ** 2 + mu)
    return torch.fft.ifft2(X).real


def noise_level_to_diffusion(x, sigma):
    """(alpha_bar, x_t): the diffusion level and input that denoise x = x0 + sigma n."""
    alpha_bar = 1 / (1 + sigma**2)
    return torch.as_tensor(alpha_bar, dtype=x.dtype), alpha_bar**0.5 * x


def sds_gradient(eps_hat, eps, alpha_bar, lam):
    """Gradient of lam ||eps - eps_hat||^2 w.r.t. x, ignoring the network's Jacobian
    (x_t = sqrt(ab) x + sqrt(1 - ab) eps)."""
    return 2 * lam * alpha_bar**0.5 * (eps_hat - eps)


def _blur_cases():
    cases = []
    for k, mu in enumerate((1e-3, 0.1, 2.0)):
        ker = torch.zeros(8, 8, dtype=torch.float64)
        ker[:3, :3] = torch.rand(3, 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        ker = torch.roll(ker / ker.sum(), (-1, -1), (0, 1))
        cases.append({"z": _rand(2, 1, 8, 8, seed=k), "y": _rand(2, 1, 8, 8, seed=10 + k),
                      "kernel_fft": torch.fft.fft2(ker), "mu": mu})
    return cases


EXERCISES = [
    Exercise("inpainting_adjoint", "07", "the adjoint A^T y of inpainting A x = mask * x",
             inpainting_adjoint,
             lambda: [{"mask": _mask(1, 1, 6, 6, seed=k), "y": _rand(2, 1, 6, 6, seed=k)} for k in range(3)],
             "Write <A x, y> = sum mask * x * y and read off what multiplies x."),
    Exercise("avgpool_adjoint", "07", "the adjoint of f x f average pooling (B, C, h, w) -> (B, C, h f, w f)",
             avgpool_adjoint,
             lambda: [{"y": _rand(2, 1, 3, 4, seed=k), "factor": f} for k, f in enumerate((1, 2, 4))],
             "Each output pixel is (1/f^2) times the sum of its f x f block; the adjoint sends y_ij back to "
             "every pixel of the block with the same weight. Try repeat_interleave."),
    Exercise("tikhonov_filter", "07", "Tikhonov's filter factors phi(s) for singular values s and weight lam",
             tikhonov_filter,
             lambda: [{"s": torch.logspace(-4, 0, 9, dtype=torch.float64), "lam": lam} for lam in (1e-4, 1e-2, 1.0)],
             "In the SVD basis (A^T A + lam I)^{-1} A^T divides u_i^T y by s_i and multiplies by "
             "s_i^2 / (...): phi_i is what multiplies the pseudo-inverse's 1 / s_i."),
    Exercise("dual_ball_projection", "07", "project each 2-vector of p (..., 2) onto the disc of radius lam",
             dual_ball_projection,
             lambda: [{"p": _rand(2, 1, 4, 4, 2, seed=k), "lam": lam} for k, lam in enumerate((0.1, 0.5, 10.0))],
             "Vectors inside the disc stay; outside, rescale to length lam: divide by max(1, |p| / lam)."),
    Exercise("hqs_data_step_inpainting", "08", "the HQS data step for inpainting (closed form, per pixel)",
             hqs_data_step_inpainting,
             lambda: [{"z": _rand(2, 1, 5, 5, seed=k), "y": _mask(1, 1, 5, 5, seed=k) * _rand(2, 1, 5, 5, seed=5 + k),
                       "mask": _mask(1, 1, 5, 5, seed=k), "mu": mu} for k, mu in enumerate((1e-3, 0.5, 4.0))],
             "Set the gradient to zero: (A^T A + mu I) x = A^T y + mu z, and A^T A = diag(mask)."),
    Exercise("hqs_data_step_blur", "08", "the HQS data step for a circular blur, in the Fourier domain",
             hqs_data_step_blur, _blur_cases,
             "The FFT diagonalises the blur: A^T A becomes |K|^2 and A^T y becomes conj(K) Y. Divide, then "
             "take the real part of the inverse FFT."),
    Exercise("noise_level_to_diffusion", "08", "(alpha_bar, x_t) at which a diffusion denoiser removes noise of std sigma",
             noise_level_to_diffusion,
             lambda: [{"x": _rand(3, 2, seed=k), "sigma": s} for k, s in enumerate((0.01, 0.3, 2.0))],
             "x_t / sqrt(alpha_bar) = x0 + sqrt((1 - alpha_bar) / alpha_bar) eps: solve "
             "(1 - alpha_bar) / alpha_bar = sigma^2, then scale x."),
    Exercise("sds_gradient", "08", "the prior gradient of Graikos et al.'s loss without the network's Jacobian",
             sds_gradient,
             lambda: [{"eps_hat": _rand(3, 4, seed=k), "eps": _rand(3, 4, seed=20 + k), "alpha_bar": ab, "lam": lam}
                      for k, (ab, lam) in enumerate(((0.9, 1.0), (0.3, 0.5), (0.02, 4.0)))],
             "Chain rule: d/dx ||eps - eps_hat(x_t)||^2 = -2 (d eps_hat / d x_t)^T (eps - eps_hat) sqrt(ab); "
             "replace the Jacobian d eps_hat / d x_t by the identity."),
]


def _self_check():
    """The references agree with the package (run by the tests)."""
    from ..inverse import Blur, Inpainting, SuperResolution, pnp_hqs
    from ..inverse.classical import _project
    from ..denoiser import sigma_denoiser
    from ..schedules import NoiseSchedule
    g = torch.Generator().manual_seed(0)
    mask = _mask(6, 6, seed=1)
    y = _rand(2, 1, 6, 6, seed=2)
    torch.testing.assert_close(inpainting_adjoint(mask, y), Inpainting(mask, channels=1).A_adjoint(y))
    y = _rand(2, 1, 3, 4, seed=3)
    torch.testing.assert_close(avgpool_adjoint(y, 2), SuperResolution(2, (6, 8), channels=1).A_adjoint(y))
    op = Blur(torch.rand(3, 3, generator=g, dtype=torch.float64), 8, channels=1)
    s = op.singular_values()
    yb = _rand(1, 1, 8, 8, seed=4)
    x_filter = op.V(tikhonov_filter(s, 0.1) / s.clamp_min(1e-300) * op.U_T(yb))
    torch.testing.assert_close(x_filter, op.solve_normal(op.A_adjoint(yb), 0.1))
    p = _rand(1, 1, 3, 3, 2, seed=5)
    torch.testing.assert_close(dual_ball_projection(p, 0.5), _project(p, torch.tensor(0.5, dtype=torch.float64)))
    z = _rand(1, 1, 8, 8, seed=6)
    torch.testing.assert_close(hqs_data_step_blur(z, yb, op.fourier_multiplier, 0.3),
                               op.solve_normal(op.A_adjoint(yb) + 0.3 * z, 0.3))
    inp = Inpainting(_mask(8, 8, seed=7), channels=1)
    torch.testing.assert_close(hqs_data_step_inpainting(z, inp.A(yb), inp.mask, 0.3),
                               inp.solve_normal(inp.A_adjoint(inp.A(yb)) + 0.3 * z, 0.3))
    # one pnp_hqs step with the identity denoiser is the data step
    got = pnp_hqs(inp.A(yb), inp, lambda x, sigma: x, sigmas=[0.5], lam=0.3, sigma_y=0.1, x_init=z)
    torch.testing.assert_close(got, hqs_data_step_inpainting(z, inp.A(yb), inp.mask, 0.3 * 0.1**2 / 0.5**2))
    # the noise-level adapter calls the diffusion denoiser at exactly (alpha_bar, x_t)
    ab, xt = noise_level_to_diffusion(z, 0.5)
    sched = NoiseSchedule(torch.tensor([0.999, float(ab), 0.1], dtype=torch.float64), torch.arange(3))
    seen = {}
    D = sigma_denoiser(lambda x, t: seen.update(x=x, t=t) or x, sched)
    D(z, 0.5)
    torch.testing.assert_close(seen["x"], xt)
    assert int(seen["t"][0]) == 1
