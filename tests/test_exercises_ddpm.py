"""The exercises of chapters 01-02 (diffedu/exercises/ddpm.py): the references agree with the
package, and the checker catches the mistakes a student is likely to make in each derivation."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import ddpm


def test_every_chapter_01_02_exercise_asks_for_a_derivation():
    names = {e.name for e in ex.EXERCISES.values() if e.chapter in ("01", "02")}
    assert names == {e.name for e in ddpm.EXERCISES}, "chapters 01-02 keep their exercises in exercises/ddpm.py"
    assert len(names) >= 6


def test_typical_mistakes_fail(capsys):
    # log-SNR inverted with the wrong sign; sigma as a variance instead of a standard deviation
    assert not ex.check("alpha_bar_sigma_from_log_snr", lambda lam: (torch.sigmoid(-lam), torch.exp(-lam / 2)))
    assert not ex.check("alpha_bar_sigma_from_log_snr", lambda lam: (torch.sigmoid(lam), torch.exp(-lam)))
    # the respaced betas read off the original betas (the mistake chapter 01 warns about)
    def original_betas(alpha_bar, keep):
        return (1 - alpha_bar / torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]]))[keep]
    assert not ex.check("respaced_betas", original_betas)
    # the half-signal point of a symmetric window, assumed to be 1/2 for every window
    assert not ex.check("sigmoid_half_signal", lambda start, end, tau: torch.tensor(0.5, dtype=torch.float64))
    # lambda_t with the "large" variance beta_t instead of beta~_t
    assert not ex.check("elbo_weight", lambda ab_t, ab_prev: (1 - ab_t / ab_prev) / (2 * (ab_t / ab_prev) * (1 - ab_t)))
    # DDIM at eta = 1 with the eta = 0 coefficients (sigma forgotten in the square root)
    def no_sigma(ab_t, ab_prev):
        s = (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)
        c_xt = (1 - ab_prev) ** 0.5 / (1 - ab_t) ** 0.5
        return s ** 0.5, c_xt, ab_prev ** 0.5 - c_xt * ab_t ** 0.5
    assert not ex.check("ddim_eta1_is_ddpm", no_sigma)
    # the family's variance predicted as the correct marginal whatever v is
    assert not ex.check("ddim_family_variance", lambda v, ab_t, ab_prev, eta: (1 - ab_prev) * torch.ones_like(v))
    assert capsys.readouterr().out.count("hint:") == 7


def test_the_derivations_written_from_ddim_pass():
    """The intended route for 'eta = 1 is DDPM': DDIM's formulas with dd.ddim_sigma."""
    import diffedu as dd

    def from_ddim(ab_t, ab_prev):
        sigma = torch.tensor([dd.ddim_sigma(a, b, 1.0) for a, b in zip(ab_t.tolist(), ab_prev.tolist())], dtype=torch.float64)
        c_xt = (1 - ab_prev - sigma ** 2) ** 0.5 / (1 - ab_t) ** 0.5
        return sigma, c_xt, ab_prev ** 0.5 - c_xt * ab_t ** 0.5
    assert ex.check("ddim_eta1_is_ddpm", from_ddim)
    assert ex.check("elbo_weight", lambda ab_t, ab_prev: 0.5 * ((ab_prev / (1 - ab_prev)) / (ab_t / (1 - ab_t)) - 1))
