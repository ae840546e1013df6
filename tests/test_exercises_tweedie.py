"""The exercises of chapter 03: references agree with the package, typical wrong answers fail."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import tweedie

NAMES = [e.name for e in tweedie.EXERCISES]


def test_typical_mistakes_fail(capsys):
    wrong = {
        # the score's sign convention mixed up: E[x0 | x_t]-style shrinkage towards m, not the noise
        "eps_posterior_mean_gaussian": lambda xt, alpha_bar, m, v: (xt - alpha_bar ** 0.5 * m) / (1 - alpha_bar) ** 0.5,
        # "velocity = x0-loss" and the score weight of the eps-loss (forgets the 1/s^2)
        "velocity_and_score_weights": lambda snr: (torch.ones_like(snr), snr),
        # both limits swapped
        "ideal_denoiser_limits": lambda xt, train: tweedie.ideal_denoiser_limits(xt, train)[::-1],
    }
    assert set(wrong) == set(NAMES)
    for name, fn in wrong.items():
        assert not ex.check(name, fn), name
    assert "hint:" in capsys.readouterr().out


def test_the_weights_order_the_losses_at_the_noisy_end():
    """At small SNR: x0 (1) = v (1 + SNR) ~ velocity ((1 + sqrt SNR)^2) >> score (SNR (1 + SNR))
    and eps (SNR): the chapter's point that eps and score losses barely see the noisiest steps."""
    snr = torch.tensor([1e-4], dtype=torch.float64)
    w_vel, w_score = tweedie.velocity_and_score_weights(snr)
    assert w_vel > 1 + snr > 100 * w_score > 100 * snr
