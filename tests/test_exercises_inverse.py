"""The exercises of chapters 07-08: references agree with the package, typical wrong answers fail."""
import math

import torch

from diffedu import exercises as ex
from diffedu.exercises import inverse

NAMES = [e.name for e in inverse.EXERCISES]


def test_typical_mistakes_fail():
    wrong = {
        # only the noise term: forgets the null-space coefficients that A^+ sets to zero
        "pinv_expected_mse": lambda x_coef, s, sigma_y, rcond: (
            sigma_y**2 * (1 / s[s > rcond * s.max()] ** 2).sum() / s.numel()).expand(len(x_coef)),
        # sqrt(lam) whatever the level (right only for 1/2)
        "tikhonov_cutoff": lambda lam, level: math.sqrt(lam),
        # the signal power averaged over all pixels, missing ones included
        "tikhonov_inpainting_lam": lambda x, mask, sigma_y: sigma_y**2 / x.pow(2).flatten(1).mean(1),
        # one plateau moves, not both, and no clamp at zero
        "tv_step_jump": lambda h, m, lam: h - lam / m,
        # the data step that forgets the mask in the denominator
        "hqs_data_step_inpainting": lambda z, y, mask, mu: (mask * y + mu * z) / (1 + mu),
        # "the denoiser fills the hole with the prior mean"
        "pnp_hole_value": lambda z0, mean, var, sigmas: torch.full_like(z0, mean),
        # C^{-1} for the clean prior instead of the noisy covariance, and no sqrt(1 - ab)
        "sds_gradient_gaussian": lambda x, m, C, alpha_bar, lam: 2 * lam * alpha_bar * torch.linalg.solve(C, (x - m).T).T,
    }
    assert set(wrong) == set(NAMES)
    for name, fn in wrong.items():
        assert not ex.check(name, fn, verbose=False), name


def test_solutions_and_hints_print():
    assert "def tikhonov_cutoff" in ex.solution("tikhonov_cutoff")
    assert "diag(mask)" in ex.hint("hqs_data_step_inpainting")
