"""diffedu.exact.memorisation: the empirical (ideal) denoiser, the copying measures and the sweep."""
import pytest
import torch

import diffedu as dd
from diffedu.exact import memorisation as M


def _train(n=7, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_empirical_denoiser_is_the_mixture_of_point_masses():
    schedule, train = dd.linear_schedule(50), _train()
    ideal = M.EmpiricalDenoiser(train, schedule)
    mix = dd.GaussianMixture(torch.ones(len(train)), train, 0.0).as_denoiser(schedule)
    x = _train(20, seed=1)
    t = torch.arange(20) % 50                                     # rows at different timesteps
    for tt in (0, 25, 49, t):
        for a, b in zip(ideal.x0_eps(x, tt), mix.x0_eps(x, tt)):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(ideal.at_level(x, 0.3)[0], mix.at_level(x, 0.3)[0])
    torch.testing.assert_close(ideal(x, 10), ideal.x0_eps(x, 10, alpha_bar=float(schedule.alpha_bar[10]))[0])


def test_empirical_denoiser_float32_and_samplers():
    schedule, train = dd.linear_schedule(100), _train().float()
    x0 = dd.ddim(M.EmpiricalDenoiser(train, schedule), torch.randn(30, 2), schedule, 20)
    assert x0.dtype == torch.float32
    assert M.nn_distance(x0, train).max() < 0.05                  # it memorises: samples end on training points


def test_empirical_denoiser_rejects_bad_input():
    with pytest.raises(ValueError):
        M.EmpiricalDenoiser(torch.zeros(5), dd.linear_schedule(10))


def test_nn_distance_and_copying():
    train, x = _train(), _train(9, seed=2)
    want = torch.cdist(x, train).min(1).values
    torch.testing.assert_close(M.nn_distance(x, train, chunk=4), want)
    new = _train(200, seed=3)
    c = M.copying(train, train, new)                              # the training set itself: copies
    assert c["ratio"] == 0 and c["copies"] == 1 and 0 <= c["copies_new"] < 0.2
    c = M.copying(new, train, new)
    assert c["ratio"] == pytest.approx(1.0) and c["copies"] == c["copies_new"]


def test_sweep_rows_summary_and_table():
    rows = M.sweep(dd.data.toy_gmm(), (3, 10), dd.linear_schedule(100), seeds=(0, 1), steps=3,
                   n_samples=20, n_new=50, n_truth=100, sample_steps=5)
    assert len(rows) == 2 * 2 * len(M.WHO)
    assert {r["who"] for r in rows} == set(M.WHO)
    for r in rows:
        assert r["x"].shape == (20, 2) and r["train"].shape == (r["n"], 2)
        assert set(M.KEYS) <= set(r)
    ideal = [r for r in rows if r["who"] == "ideal"]
    assert all(r["copies"] > 0.9 for r in ideal)                  # the exact denoiser of 3 or 10 points copies
    table = M.summary(rows)
    assert set(table) == {(n, w) for n in (3, 10) for w in M.WHO}
    mean, half = table[3, "ideal"]["copies"]
    assert 0.9 < mean <= 1 and half >= 0
    text = M.format_summary(table)
    assert len(text.splitlines()) == 1 + 2 * len(M.WHO) and "SW1 to truth" in text
    with pytest.raises(ValueError):
        M.sweep(dd.data.toy_gmm(), (0,), dd.linear_schedule(10), steps=3)
