"""The exercises of chapter 09: references agree with the package, wrong answers fail."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import posterior

NAMES = [e.name for e in posterior.EXERCISES]


def test_references_agree_with_the_package():
    posterior._self_check()


def test_registered_with_their_chapter():
    assert len(NAMES) >= 3
    assert {ex.EXERCISES[n].chapter for n in NAMES} == {"09"}
    assert all(n in " ".join(ex.list_exercises("09")) for n in NAMES)




def test_common_mistakes_fail(capsys):
    def dps_without_normalising(x_prime, xt, y, A, ab_t, zeta):       # zeta instead of zeta / ||r||
        r = y - ab_t ** 0.5 * xt @ A.T
        return x_prime + zeta * 2 * ab_t ** 0.5 * r @ A

    def ddrm_ignoring_noise(x0bar, ybar, z, s, sigma_p, sigma_y, eta, eta_b):   # always paste ybar
        return ybar + sigma_p * z

    def repaint_without_jumps(n_steps, jump_length, jump_n_sample):
        return torch.arange(n_steps - 1, -2, -1)

    def diffpir_projection(x0, y, mask, rho):                          # ignores rho
        return mask * y + (1 - mask) * x0

    assert not ex.check("dps_measurement_step", dps_without_normalising)
    assert not ex.check("ddrm_measured_update", ddrm_ignoring_noise)
    assert not ex.check("repaint_levels", repaint_without_jumps)
    assert "output shape" in capsys.readouterr().out
    assert not ex.check("diffpir_inpainting_data_step", diffpir_projection)
    # plain lists are accepted for the schedule
    assert ex.check("repaint_levels", lambda **kw: posterior.repaint_levels(**kw).tolist())
