"""The exercises of chapters 04-05: references agree with the package, wrong answers fail."""

from diffedu import exercises as ex
from diffedu.exercises import sde_guidance

NAMES = [e.name for e in sde_guidance.EXERCISES]


def test_references_agree_with_the_package():
    sde_guidance._self_check()


def test_registered_with_their_chapters():
    assert len(NAMES) >= 4
    assert {ex.EXERCISES[n].chapter for n in NAMES} == {"04", "05"}
    assert all(n in " ".join(ex.list_exercises("04") + ex.list_exercises("05")) for n in NAMES)




def test_typical_mistakes_fail():
    # the reverse SDE step with the PF-ODE's half score term, or with forward-time noise sign
    assert not ex.check("reverse_sde_step", lambda x, score, beta, dt, noise:
                        x + (-0.5 * beta * x - 0.5 * beta * score) * dt + (beta * -dt) ** 0.5 * noise, verbose=False)
    # the PF-ODE drift with the full score term (that is the reverse SDE's drift)
    assert not ex.check("pf_ode_drift", lambda x, score, beta: -0.5 * beta * x - beta * score, verbose=False)
    # the flow-matching velocity pointing the wrong way (data -> noise is x1 - x0)
    assert not ex.check("flow_matching_target", lambda x0, x1, tau: ((1 - tau) * x0 + tau * x1, x0 - x1),
                        verbose=False)
    # Ho & Salimans' convention (1 + w) eps_c - w eps_u is a different w
    assert not ex.check("cfg_eps", lambda eps_cond, eps_uncond, w: (1 + w) * eps_cond - w * eps_uncond,
                        verbose=False)
    # the classifier gradient added with the score's sign
    assert not ex.check("classifier_guided_eps", lambda eps, grad_log_p, alpha_bar, scale:
                        eps + scale * (1 - alpha_bar) ** 0.5 * grad_log_p, verbose=False)


def test_solutions_print():
    assert "def cfg_eps" in ex.solution("cfg_eps")
    assert "f(x, t)" in ex.hint("pf_ode_drift")
