"""diffedu.exact.challenges: the conclusion's probes, checked against what exact references imply."""
import pytest
import torch

import diffedu as dd
from diffedu.exact import challenges as ch

GMM, SCHED = dd.data.toy_gmm(), dd.linear_schedule(200)


def test_memorisation_the_ideal_denoiser_copies_a_small_training_set():
    (r,) = ch.memorisation(GMM, (8,), SCHED, steps=20, n_samples=100)
    assert r["n"] == 8 and r["copies"] == 1.0 and r["copies_new"] < 0.1


def test_oversaturation_w1_samples_the_class_and_large_w_leaves_it():
    rows = {r["w"]: r for r in ch.oversaturation(GMM, 2, (1.0, 10.0), dd.linear_schedule(1000), steps=30, n=400)}
    assert rows[1.0]["outside"] < 0.05 < rows[10.0]["outside"]
    assert rows[10.0]["log_p"] < rows[1.0]["log_p"] and rows[10.0]["spread"] < rows[1.0]["spread"]


def test_distribution_shift_no_shift_is_bayes_and_pure_noise_excess_is_the_squared_shift():
    (same,) = ch.distribution_shift(GMM, [0.0, 0.0], SCHED, (100,), n=500)
    assert same["ratio"] == pytest.approx(1.0, abs=1e-12)
    shifted = ch.shifted(GMM, [0.3, -0.4])
    torch.testing.assert_close(shifted.means - GMM.means, torch.tensor([0.3, -0.4], dtype=torch.float64).expand(GMM.K, 2))
    (far,) = ch.distribution_shift(GMM, [0.3, -0.4], dd.linear_schedule(1000), (999,), n=20000)
    assert far["mse_prior"] - far["mse_bayes"] == pytest.approx(0.25, rel=0.1)      # |shift|^2 = 0.09 + 0.16


def test_sampling_cost_more_calls_is_better_with_an_exact_denoiser():
    cost = ch.sampling_cost(GMM, (1, 4, 32), SCHED, n=500)
    assert cost["sw"][1] > cost["sw"][4] > cost["sw"][32] and cost["sw"][32] < 2 * cost["floor"]


def test_bad_input():
    with pytest.raises(TypeError, match="gmm must be a diffedu GaussianMixture"):
        ch.memorisation("gmm", (8,), SCHED)
    with pytest.raises(ValueError, match="shift must have shape \\(2,\\)"):
        ch.shifted(GMM, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="each of ts"):
        ch.distribution_shift(GMM, [0.0, 0.0], SCHED, (500,))
