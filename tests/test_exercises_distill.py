"""The exercises of chapter 13: references agree with diffedu.distill, wrong answers fail."""
from diffedu import exercises as ex
from diffedu.exercises import distill

NAMES = [e.name for e in distill.EXERCISES]


def test_references_pass_their_own_checks():
    for name in NAMES:
        assert ex.check(name, ex.EXERCISES[name].reference, verbose=False), name


def test_plausible_wrong_answers_fail():
    # the target without the sigma ratio on alpha_t; EDM's c_skip (no eps shift); w in diffedu's scale
    wrong_pd = lambda z_t, z_tpp, alpha_t, sigma_t, alpha_tpp, sigma_tpp: (z_tpp - sigma_tpp / sigma_t * z_t) / alpha_tpp
    wrong_cm = lambda sigma, sigma_d, eps: (sigma_d ** 2 / (sigma ** 2 + sigma_d ** 2),
                                            sigma * sigma_d / (sigma ** 2 + sigma_d ** 2) ** 0.5)
    wrong_gd = lambda x_t, eps_c, eps_u, alpha_bar, w: (x_t - (1 - alpha_bar) ** 0.5 * (eps_u + w * (eps_c - eps_u))) / alpha_bar ** 0.5
    for name, fn in (("pd_target", wrong_pd), ("consistency_boundary", wrong_cm), ("guided_x0", wrong_gd)):
        assert not ex.check(name, fn, verbose=False), name


def test_hint_and_solution_print(capsys):
    assert "DDIM" in ex.hint("pd_target")
    assert "def guided_x0" in ex.solution("guided_x0")
