"""Data with exact answers and the models of chapter 14's discrete part (see discrete.py for the
categorical denoiser contract these follow).

    MarkovChain           sequences from a known chain (P, pi): exact log p(x), entropy, and the EXACT
                          categorical denoiser p(x_0 | z_t) by forward-backward (the discrete analogue of
                          the Gaussian mixture's exact denoiser), for both kinds of noise
    bigram_matrix / bigram_tv   learned bigram statistics against the true P, in total variation
    CategoricalMLP        a small network z_t -> logits of p(x_0 | z_t): (B, L, K)
    net_denoiser          the network as a categorical denoiser (softmax of its logits)
    train_categorical     fit it with MDLM's loss or D3PM's hybrid loss (train.fit, the one loop)
    binary_digits         8x8 digits thresholded to {0, 1} tokens: (N, 64)
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_choice, check_int, check_positive_int, check_tensor
from . import discrete as dc

__all__ = ["MarkovChain", "bigram_matrix", "bigram_tv", "CategoricalMLP", "net_denoiser", "train_categorical",
           "binary_digits", "independent_denoiser"]


class MarkovChain:
    """A stationary Markov chain over K tokens. P: (K, K) row-stochastic, [P]_ij = p(x^{l+1} = j | x^l = i);
    pi: (K,) the law of the first token (default: the stationary law of P)."""

    def __init__(self, P, pi=None):
        P = check_tensor("P", torch.as_tensor(P, dtype=torch.float64), ndim=2, finite=True)
        K = P.shape[0]
        if P.shape != (K, K) or bool((P < 0).any()) or not torch.allclose(P.sum(1), torch.ones(K, dtype=torch.float64)):
            raise ValueError(f"P must be a square row-stochastic matrix (entries >= 0, rows sum to 1), got shape "
                             f"{tuple(P.shape)} and row sums {P.sum(1).tolist()}")
        if pi is None:                               # the left eigenvector of P for eigenvalue 1
            w, v = torch.linalg.eig(P.T)
            pi = v[:, int((w - 1).abs().argmin())].real
            pi = pi / pi.sum()
        pi = torch.as_tensor(pi, dtype=torch.float64)
        if pi.shape != (K,) or bool((pi < -1e-12).any()) or abs(float(pi.sum()) - 1) > 1e-9:
            raise ValueError(f"pi must be ({K},) probabilities summing to 1, got {pi.tolist()}")
        self.P, self.pi, self.K = P, pi.clamp_min(0), K

    def sample(self, n: int, L: int, generator=None) -> torch.Tensor:
        """n sequences of length L: (n, L) long."""
        n, L = check_positive_int("n", n), check_positive_int("L", L)
        x = torch.empty(n, L, dtype=torch.long)
        x[:, 0] = torch.multinomial(self.pi.float().expand(n, self.K), 1, generator=generator)[:, 0]
        for pos in range(1, L):
            x[:, pos] = torch.multinomial(self.P[x[:, pos - 1]].float(), 1, generator=generator)[:, 0]
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of sequences x: (B, L): (B,) float64."""
        x = dc.check_tokens("x", x, self.K, "data tokens")
        return self.pi[x[:, 0]].log() + self.P[x[:, :-1], x[:, 1:]].log().sum(1)

    def entropy(self, L: int) -> float:
        """H(x_1..x_L) in nats = H(pi) + (L - 1) sum_i pi_i H(P_i) (pi stationary)."""
        h = lambda p: -(p * p.clamp_min(1e-300).log()).sum(-1)          # noqa: E731
        return float(h(self.pi) + (check_positive_int("L", L) - 1) * (self.pi * h(self.P)).sum())

    def posterior(self, emissions: torch.Tensor) -> torch.Tensor:
        """p(x^l = k | z) for every position, by forward-backward: (B, L, K), from emissions: (B, L, K)
        = q(z^l | x^l = k) (discrete.emission). Normalised at every position (no underflow)."""
        e = check_tensor("emissions", emissions, ndim=3).double()
        B, L, K = e.shape
        fwd, bwd = torch.empty_like(e), torch.ones_like(e)
        a = self.pi * e[:, 0]
        fwd[:, 0] = a / a.sum(-1, keepdim=True).clamp_min(1e-300)
        for pos in range(1, L):                       # alpha_l = (alpha_{l-1} P) * e_l
            a = (fwd[:, pos - 1] @ self.P) * e[:, pos]
            fwd[:, pos] = a / a.sum(-1, keepdim=True).clamp_min(1e-300)
        for pos in range(L - 2, -1, -1):              # beta_l = P (e_{l+1} * beta_{l+1})
            b = (e[:, pos + 1] * bwd[:, pos + 1]) @ self.P.T
            bwd[:, pos] = b / b.sum(-1, keepdim=True).clamp_min(1e-300)
        post = fwd * bwd
        return post / post.sum(-1, keepdim=True)

    def denoiser(self, kind: str = "absorbing"):
        """The exact categorical denoiser D(z, alpha_bar) -> (B, L, K) of this chain under `kind` noise."""
        check_choice("kind", kind, dc.KINDS)
        return lambda z, alpha_bar: self.posterior(dc.emission(kind, self.K, z, alpha_bar))


def bigram_matrix(x: torch.Tensor, K: int) -> torch.Tensor:
    """Empirical transition matrix of sequences x: (N, L): (K, K), row i = the frequencies of the token
    after an i (a row never seen stays uniform)."""
    x = dc.check_tokens("x", x, K, "data tokens")
    counts = torch.zeros(K * K, dtype=torch.float64).index_add_(
        0, (x[:, :-1] * K + x[:, 1:]).reshape(-1), torch.ones(x[:, 1:].numel(), dtype=torch.float64)).reshape(K, K)
    rows = counts.sum(1, keepdim=True)
    return torch.where(rows > 0, counts / rows.clamp_min(1), torch.full_like(counts, 1.0 / K))


def bigram_tv(x: torch.Tensor, P: torch.Tensor, pi: torch.Tensor | None = None) -> float:
    """sum_i pi_i TV(Phat_i, P_i), TV = half the L1 distance of the rows, with Phat = bigram_matrix(x):
    0 = the chain's statistics exactly. pi: row weights (default uniform)."""
    P = torch.as_tensor(P, dtype=torch.float64)
    K = P.shape[0]
    pi = torch.full((K,), 1.0 / K, dtype=torch.float64) if pi is None else torch.as_tensor(pi, dtype=torch.float64)
    return float((pi * 0.5 * (bigram_matrix(x, K) - P).abs().sum(1)).sum())


def independent_denoiser(marginals: torch.Tensor):
    """The naive foil: every token independent, p(x_0^l = k | z) = marginals[l, k] whatever z says
    (unmasked tokens still carried over by the samplers). marginals: (L, K)."""
    m = check_tensor("marginals", marginals, ndim=2).double()
    return lambda z, alpha_bar: m.expand(len(z), *m.shape)


class CategoricalMLP(nn.Module):
    """logits of p(x_0 | z_t): (B, L, K) from tokens z: (B, L) in 0..S-1 (S = K + 1 with mask=True) and,
    with time=True, the level alpha_bar: (B,). One-hot input flattened (B, L * S) [+ alpha_bar], residual
    SiLU blocks of width `hidden`, one linear read-out to (B, L * K)."""

    def __init__(self, L: int, K: int, mask: bool = True, hidden: int = 128, depth: int = 3, time: bool = False):
        super().__init__()
        for name, v in (("L", L), ("K", K), ("hidden", hidden), ("depth", depth)):
            check_positive_int(name, v)
        self.L, self.K, self.mask, self.time = L, K, bool(mask), bool(time)
        self.S = K + self.mask
        self.inp = nn.Linear(L * self.S + self.time, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, L * K)

    def forward(self, z: torch.Tensor, alpha_bar=None) -> torch.Tensor:
        z = dc.check_tokens("z", z, self.S, f"K={self.K} data tokens{' + the mask' if self.mask else ''}")
        if z.shape[1] != self.L:
            raise ValueError(f"z must have shape (B, {self.L}), got {tuple(z.shape)}")
        h = nn.functional.one_hot(z, self.S).float().reshape(len(z), -1)
        if self.time:
            h = torch.cat([h, torch.as_tensor(alpha_bar, dtype=torch.float32).reshape(-1, 1).expand(len(z), 1)], 1)
        h = self.inp(h)
        for layer in self.blocks:
            h = h + layer(nn.functional.silu(h))
        return self.out(nn.functional.silu(h)).reshape(len(z), self.L, self.K)


def net_denoiser(model: CategoricalMLP):
    """The network as a categorical denoiser: D(z, alpha_bar) = softmax(model(z, alpha_bar)) (float64)."""
    if not isinstance(model, CategoricalMLP):
        raise TypeError(f"model must be a CategoricalMLP, got {type(model).__name__}")
    return lambda z, alpha_bar: torch.softmax(model(z, alpha_bar).double(), -1)


def train_categorical(model: CategoricalMLP, data: torch.Tensor, steps: int, loss: str = "mdlm", T: int = 100,
                      lam: float = 0.01, batch_size: int = 256, lr: float = 2e-3, seed: int = 0):
    """Fit `model` to sequences data: (N, L) with MDLM's loss ("mdlm") or D3PM's hybrid loss on the
    uniform process with T cosine steps ("hybrid"); both per token. Returns (ema_model, losses)."""
    from ..train.fit import fit
    check_choice("loss", loss, ("mdlm", "hybrid"))
    data = dc.check_tokens("data", data, model.K, "data tokens")
    seed = check_int("seed", seed, lo=0)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    proc = dc.d3pm("uniform", model.K, T, "cosine") if loss == "hybrid" else None
    D = net_denoiser(model)

    def batch_loss():
        x0 = data[torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)]
        per_seq = dc.mdlm_loss(D, x0, model.K, g) if proc is None else dc.hybrid_loss(proc, D, x0, g, lam)
        return per_seq.mean() / data.shape[1]

    return fit(model, batch_loss, steps, lr, progress=False)


def binary_digits(split: str | None = None) -> torch.Tensor:
    """The 8x8 digits (data.digits) as binary tokens: pixel > 0 (brighter than mid-grey) -> 1: (N, 64) long."""
    from ..data import digits
    x, _ = digits(size=8, split=split)
    return (x.reshape(len(x), -1) > 0).long()
