"""The exercises of chapter 09: references agree with the package, wrong answers fail."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import posterior

NAMES = [e.name for e in posterior.EXERCISES]


def test_no_duplicate_of_chapter_08():
    """The inpainting data step is chapter 08's exercise only (issue 18)."""
    assert "diffpir_inpainting_data_step" not in ex.EXERCISES
    assert not [n for n in NAMES if "data_step" in n], NAMES


def test_common_mistakes_fail(capsys):
    def sigma_without_sqrt_alpha(r_norm, ab_t, ab_prev, zeta):         # drops the 1 / sqrt(alpha) of the DDPM mean
        return ((1 - ab_t / ab_prev) * r_norm / (2 * zeta)).sqrt()

    def sigma_from_sigma_y_squared(r_norm, ab_t, ab_prev, zeta):       # forgets the factor 2 of grad ||r||^2
        return ((1 - ab_t / ab_prev) * r_norm / (zeta * (ab_t / ab_prev) ** 0.5)).sqrt()

    def ddrm_forgetting_y_noise(x0bar, xbar, s, sigma_p, sigma_y, eta, eta_b):   # var: only the fresh z
        mean, _ = posterior.ddrm_measured_moments(x0bar, xbar, s, sigma_p, sigma_y, eta, eta_b)
        return mean, torch.full_like(mean, sigma_p ** 2) - eta_b ** 2 * (sigma_y / s) ** 2 * (sigma_p * s >= sigma_y)

    def repaint_cost_naive(n_steps, jump_length, jump_n_sample):       # every level denoised jump_n_sample times
        return n_steps * jump_n_sample, (jump_n_sample - 1) * n_steps

    assert not ex.check("dps_effective_sigma_y", sigma_without_sqrt_alpha)
    assert not ex.check("dps_effective_sigma_y", sigma_from_sigma_y_squared)
    assert not ex.check("ddrm_measured_moments", ddrm_forgetting_y_noise)
    assert not ex.check("ddrm_measured_moments", lambda **kw: posterior.ddrm_measured_moments(**kw)[0])
    assert not ex.check("repaint_cost", repaint_cost_naive)
    assert not ex.check("exact_on_measurements", lambda: [0, 1, 1, 0])     # DiffPIR's rho_i = 0 when sigma_y = 0
    assert not ex.check("exact_on_measurements", lambda: [1, 1, 1, 1])     # DPS only steps towards y
    assert "hint:" in capsys.readouterr().out
    # plain Python numbers and lists are accepted
    assert ex.check("repaint_cost", lambda n_steps, jump_length, jump_n_sample: tuple(
        int(v) for v in posterior.repaint_cost(n_steps, jump_length, jump_n_sample)))
    assert ex.check("exact_on_measurements", lambda: [0, 1, 1, 1])
