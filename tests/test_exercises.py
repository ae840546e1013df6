import importlib
import pkgutil

import pytest

from diffedu import exercises as ex

MODULES = [importlib.import_module(f"diffedu.exercises.{m.name}") for m in pkgutil.iter_modules(ex.__path__)]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__.rsplit(".", 1)[1] for m in MODULES])
def test_each_module_agrees_with_the_package_and_registers_its_chapters(module):
    """Every exercise module ties its references to the package (`_self_check`: an exercise
    cannot drift from diffedu) and registers at least one exercise, each under its chapter."""
    module._self_check()
    names = [e.name for e in module.EXERCISES]
    assert names and all(ex.EXERCISES[n] is e for n, e in zip(names, module.EXERCISES))
    for e in module.EXERCISES:
        assert e.name in " ".join(ex.list_exercises(e.chapter))


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
