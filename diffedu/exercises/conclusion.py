"""Exercises of chapter 16 (the conclusion), each graded on fixed random inputs.

    shift_excess_limit   the excess MSE of a shifted prior's denoiser at pure noise (derive the limit)
    copy_share           the share of generated points that copy a training point
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def shift_excess_limit(shift):
    """As alpha_bar -> 0, x_t carries no information: the prior's denoiser returns its mean m and the
    shifted data's returns m + shift, so E|m - x0|^2 - E|m + shift - x0|^2 = |shift|^2 (bias squared)."""
    return (shift ** 2).sum()


def copy_share(x, train, r):
    """Share of rows of x (N, D) closer than r to some row of train (n, D)."""
    return (torch.cdist(x, train).min(1).values < r).double().mean()


def _self_check():
    """The references agree with the package: the exact denoisers' limit (exact.gmm) and the copy
    measure of exact.memorisation."""
    from ..data.toy import toy_gmm
    from ..exact.challenges import shifted
    from ..exact.memorisation import copying, nn_distance
    gmm, shift = toy_gmm(), _rand(2, seed=3)
    x = _rand(200, 2, seed=4, scale=2.0)
    mse = [((m.denoiser(x, 1e-12) - m.mean()) ** 2).sum(1).max() for m in (gmm, shifted(gmm, shift))]
    assert max(mse) < 1e-9                                          # at pure noise: each mixture's own mean
    torch.testing.assert_close((gmm.mean() - shifted(gmm, shift).mean()).pow(2).sum(), shift_excess_limit(shift))
    train, new = _rand(30, 2, seed=5), _rand(40, 2, seed=6)
    r = 0.1 * float(nn_distance(new, train).median())
    assert abs(float(copy_share(x, train, r)) - copying(x, train, new)["copies"]) < 1e-12


EXERCISES = [
    Exercise("shift_excess_limit", "16",
             "derive the excess MSE of a prior's exact denoiser on data whose mean moved by `shift`, as alpha_bar -> 0",
             shift_excess_limit,
             lambda: [{"shift": _rand(d, seed=k)} for k, d in enumerate((1, 2, 5, 2))],
             "At pure noise E[x0 | x_t] is the mean of whatever distribution the denoiser believes in. Write the MSE of "
             "a constant guess c as variance + |c - E x0|^2 and subtract the Bayes value."),
    Exercise("copy_share", "16",
             "write the share of generated points x within distance r of a training point",
             copy_share,
             lambda: [{"x": _rand(50, 2, seed=k), "train": _rand(20, 2, seed=10 + k), "r": r}
                      for k, r in enumerate((0.1, 0.3, 1.0))],
             "torch.cdist gives all pairwise distances (N, n); take each row's minimum and compare it with r."),
]
