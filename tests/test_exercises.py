import pytest

from diffedu import exercises as ex


def test_references_agree_with_the_package():
    from diffedu.exercises import basics
    basics._self_check()


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
    assert not ex.check("q_sample", lambda x0, alpha_bar, eps: alpha_bar * x0 + (1 - alpha_bar) * eps)
    assert "max error" in capsys.readouterr().out
    assert not ex.check("q_sample", lambda x0, alpha_bar, eps: x0[:, 0])
    assert "output shape" in capsys.readouterr().out
    assert not ex.check("q_sample", lambda x0, alpha_bar, eps: undefined_name)  # noqa: F821
    assert "raised NameError" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown exercise 'ddim'"):
        ex.check("ddim", print)
    with pytest.raises(TypeError, match="pass your function itself"):
        ex.check("q_sample", 3)
    assert "cumprod" in ex.hint("alpha_bar_from_betas")
    assert "def ddim_step" in ex.solution("ddim_step")
