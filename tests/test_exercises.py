import pytest

from diffedu import exercises as ex


@pytest.mark.parametrize("name", sorted(ex.EXERCISES))
def test_reference_passes_and_a_wrong_answer_fails(name, capsys):
    e = ex.EXERCISES[name]
    assert ex.check(name, e.reference)

    def wrong(**kw):
        out = e.reference(**kw)
        return tuple(o * 1.01 + 0.01 for o in out) if isinstance(out, tuple) else out * 1.01 + 0.01

    assert not ex.check(name, wrong)
    assert "hint:" in capsys.readouterr().out


def test_messages_for_common_mistakes(capsys):
    # chapter 01-02 exercises (diffedu/exercises/ddpm.py) as the examples
    assert not ex.check("elbo_weight", lambda ab_t, ab_prev: (ab_prev - ab_t) / (ab_t * (1 - ab_prev)))
    assert "max error" in capsys.readouterr().out
    assert not ex.check("elbo_weight", lambda ab_t, ab_prev: (ab_prev - ab_t)[:1])
    assert "output shape" in capsys.readouterr().out
    assert not ex.check("elbo_weight", lambda ab_t, ab_prev: undefined_name)  # noqa: F821
    assert "raised NameError" in capsys.readouterr().out
    assert not ex.check("alpha_bar_sigma_from_log_snr", lambda lam: lam.sigmoid())
    assert "expected 2 outputs, got 1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown exercise 'ddim'"):
        ex.check("ddim", print)
    with pytest.raises(TypeError, match="pass your function itself"):
        ex.check("elbo_weight", 3)
    assert "logit" in ex.hint("sigmoid_half_signal")
    assert "def ddim_eta1_is_ddpm" in ex.solution("ddim_eta1_is_ddpm")
