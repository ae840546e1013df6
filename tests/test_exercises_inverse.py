"""The exercises of chapters 07-08: references agree with the package, wrong answers fail."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import inverse

NAMES = [e.name for e in inverse.EXERCISES]


def test_references_agree_with_the_package():
    inverse._self_check()


def test_registered_with_their_chapters():
    assert len(NAMES) >= 6
    assert {ex.EXERCISES[n].chapter for n in NAMES} == {"07", "08"}
    assert sum(ex.EXERCISES[n].chapter == "07" for n in NAMES) >= 3
    assert sum(ex.EXERCISES[n].chapter == "08" for n in NAMES) >= 3
    assert all(n in " ".join(ex.list_exercises("07") + ex.list_exercises("08")) for n in NAMES)




def test_typical_mistakes_fail():
    # average pooling's adjoint without the 1/f^2 (that is nearest upsampling, A^+ up to scale)
    assert not ex.check("avgpool_adjoint", lambda y, factor:
                        y.repeat_interleave(factor, -2).repeat_interleave(factor, -1), verbose=False)
    # Tikhonov's filter written as s / (s^2 + lam) (that is the whole multiplier of u_i^T y)
    assert not ex.check("tikhonov_filter", lambda s, lam: s / (s**2 + lam), verbose=False)
    # clipping each coordinate instead of projecting the vector (anisotropic TV)
    assert not ex.check("dual_ball_projection", lambda p, lam: p.clamp(-lam, lam), verbose=False)
    # the HQS data step that forgets the mask in the denominator
    assert not ex.check("hqs_data_step_inpainting", lambda z, y, mask, mu: (mask * y + mu * z) / (1 + mu),
                        verbose=False)
    # the blur data step with K instead of conj(K) (convolution instead of correlation)
    assert not ex.check("hqs_data_step_blur", lambda z, y, kernel_fft, mu: torch.fft.ifft2(
        (kernel_fft * torch.fft.fft2(y) + mu * torch.fft.fft2(z)) / (kernel_fft.abs() ** 2 + mu)).real, verbose=False)
    # alpha_bar = 1 - sigma^2 (a variance-preserving mix-up)
    assert not ex.check("noise_level_to_diffusion", lambda x, sigma:
                        (torch.as_tensor(1 - min(sigma**2, 0.99), dtype=x.dtype), (1 - min(sigma**2, 0.99)) ** 0.5 * x),
                        verbose=False)


def test_solutions_print():
    assert "def tikhonov_filter" in ex.solution("tikhonov_filter")
    assert "conj(K)" in ex.hint("hqs_data_step_blur")
