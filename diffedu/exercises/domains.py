"""Exercises of chapter 14 (discrete and low-rank data), each graded on fixed inputs.

    qbar               the cumulative transition matrix Qbar_t of D3PM, uniform or absorbing
    mdlm_weight        the weight of MDLM's masked cross-entropy in one step s < t
    lowrank_denoiser   the exact denoiser of one low-rank Gaussian: projection, then shrinkage
"""
from __future__ import annotations

import torch

from . import Exercise


def qbar(alpha_bar, K, absorbing):
    """Qbar_t = alpha_bar I + (1 - alpha_bar) 1 m^T: m = uniform 1/K over K states, or (absorbing) K + 1
    states with m = e_mask, the mask being the last state. Returns (S, S) float64."""
    S = K + 1 if absorbing else K
    m = torch.zeros(S, dtype=torch.float64)
    if absorbing:
        m[K] = 1.0
    else:
        m[:] = 1.0 / K
    return alpha_bar * torch.eye(S, dtype=torch.float64) + (1 - alpha_bar) * m.expand(S, S)


def mdlm_weight(alpha_s, alpha_t):
    """The probability that a token masked at t is revealed by s < t: (alpha_s - alpha_t) / (1 - alpha_t)."""
    return (alpha_s - alpha_t) / (1 - alpha_t)


def lowrank_denoiser(x, U, alpha_bar, scale):
    """E[x_0 | x_t = x] for x_0 = U a, a ~ N(0, scale^2 I): project on span(U), then shrink by
    sqrt(ab) scale^2 / (ab scale^2 + 1 - ab). x: (B, D), U: (D, d) orthonormal columns."""
    c = alpha_bar ** 0.5 * scale ** 2 / (alpha_bar * scale ** 2 + 1 - alpha_bar)
    return c * x @ U @ U.T


def _lowrank_cases():
    out = []
    for k, (D, d, ab, s) in enumerate([(5, 2, 0.3, 1.0), (8, 3, 0.9, 2.0), (4, 1, 0.05, 0.5)]):
        g = torch.Generator().manual_seed(k)
        U = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))[0]
        out.append({"x": torch.randn(6, D, generator=g, dtype=torch.float64), "U": U, "alpha_bar": ab, "scale": s})
    return out


EXERCISES = [
    Exercise("qbar", "14",
             "write D3PM's cumulative matrix Qbar_t from alpha_bar_t, K and whether the process is absorbing",
             qbar,
             lambda: [{"alpha_bar": ab, "K": K, "absorbing": a} for ab, K, a in
                      [(0.7, 3, False), (0.2, 4, True), (1.0, 2, True), (0.0, 5, False), (0.45, 2, True)]],
             "Each step keeps a token with probability 1 - beta_t and otherwise moves it to a draw from m; after "
             "t steps it was never moved with probability prod (1 - beta_s) = alpha_bar_t, and if it ever moved it "
             "is a draw from m (m is stationary: m Q = m). Row i of Qbar_t is alpha_bar e_i + (1 - alpha_bar) m."),
    Exercise("mdlm_weight", "14",
             "write the weight of MDLM's masked cross-entropy in a step from level alpha_t to alpha_s > alpha_t",
             mdlm_weight,
             lambda: [{"alpha_s": torch.tensor([0.5, 0.9, 1.0, 0.2], dtype=torch.float64),
                       "alpha_t": torch.tensor([0.4, 0.1, 0.0, 0.19], dtype=torch.float64)}],
             "Bayes on one masked token: P(unmasked at s | masked at t) = P(masked at t | unmasked at s) P(unmasked at s) "
             "/ P(masked at t) = (1 - alpha_t / alpha_s) alpha_s / (1 - alpha_t)."),
    Exercise("lowrank_denoiser", "14",
             "write the exact denoiser of one low-rank Gaussian x_0 = U a, a ~ N(0, scale^2 I), at level alpha_bar",
             lowrank_denoiser, _lowrank_cases,
             "Split x_t into its part in span(U) and the rest. The rest is pure noise (x_0 has no component "
             "there), so the denoiser drops it; inside span(U) each coordinate is a scalar Gaussian problem "
             "with the Wiener answer sqrt(ab) scale^2 / (ab scale^2 + 1 - ab) times the coordinate."),
]


def _self_check():
    """The references agree with diffedu.domains (the exercises cannot drift from the package)."""
    from ..domains import discrete, lowrank
    for case in EXERCISES[0].cases():
        proc = discrete.D3PM("absorbing" if case["absorbing"] else "uniform", case["K"],
                             torch.tensor([1.0, case["alpha_bar"]], dtype=torch.float64))
        torch.testing.assert_close(qbar(**case), proc.Qbar(1))
    case = EXERCISES[1].cases()[0]
    torch.testing.assert_close(mdlm_weight(**case), discrete.mdlm_weight(case["alpha_s"], case["alpha_t"]))
    for case in _lowrank_cases():
        mix = lowrank.LowRankMixture(case["U"][None], scale=case["scale"])
        torch.testing.assert_close(lowrank_denoiser(**case), mix.denoise(case["x"], case["alpha_bar"]))
