"""Discrete diffusion (diffedu.domains.discrete): every formula against brute force or a closed form."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from diffedu.domains import discrete as dc
from diffedu.domains import discrete_models as dm

P4 = torch.tensor([[.15, .75, .05, .05], [.05, .15, .75, .05], [.05, .05, .15, .75], [.75, .05, .05, .15]],
                  dtype=torch.float64)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", dc.KINDS)
def test_qbar_is_the_product_of_the_steps_and_rows_are_stochastic(kind):
    proc = dc.d3pm(kind, 3, 5, "cosine")
    Q = torch.eye(proc.S, dtype=torch.float64)
    for t in range(1, 6):
        Q = Q @ proc.Q(t)
        torch.testing.assert_close(Q, proc.Qbar(t))
        torch.testing.assert_close(proc.Q(t).sum(1), torch.ones(proc.S, dtype=torch.float64))
    torch.testing.assert_close(proc.m @ proc.Q(3), proc.m)            # m is stationary


def test_absorbing_linear_schedule_is_d3pm_beta():
    """D3PM's absorbing schedule beta_t = 1 / (T - t + 1) gives alpha_bar_t = 1 - t / T."""
    T = 7
    proc = dc.d3pm("absorbing", 2, T)
    torch.testing.assert_close(proc.betas, 1 / (T - torch.arange(1, T + 1, dtype=torch.float64) + 1))


@pytest.mark.parametrize("kind", dc.KINDS)
def test_posterior_matches_brute_force_bayes_over_paths(kind):
    """q(x_{t-1} | x_t, x_0) from summing the chain x_0 -> x_1 -> ... -> x_t over every path."""
    proc = dc.d3pm(kind, 3, 3, "cosine")
    Q = [None] + [proc.Q(s).tolist() for s in (1, 2, 3)]
    for t in (1, 2, 3):
        for x0, xt in itertools.product(range(3), range(proc.S)):
            num = torch.zeros(proc.S, dtype=torch.float64)
            for path in itertools.product(range(proc.S), repeat=t):
                if path[-1] != xt:
                    continue
                pr, prev = 1.0, x0
                for s, xs in enumerate(path, 1):
                    pr, prev = pr * Q[s][prev][xs], xs
                num[path[-2] if t >= 2 else x0] += pr
            if num.sum() > 0:
                got = proc.posterior(torch.tensor([[xt]]), torch.tensor([[x0]]), t)[0, 0]
                torch.testing.assert_close(got, num / num.sum())


@pytest.mark.parametrize("kind", dc.KINDS)
def test_x0_parameterisation_with_the_exact_denoiser_is_the_exact_reverse(kind):
    """A chain of length 2 (K = 2), every x_0 and x_t enumerated: p(x_{t-1} | x_t) by brute force equals
    reverse_probs(exact p(x_0 | x_t)) at every position; D3PM's eq. 4 agrees only for the absorbing kind."""
    chain, proc, t = dm.MarkovChain(torch.tensor([[.9, .1], [.3, .7]])), dc.d3pm(kind, 2, 4), 3
    xs = torch.tensor(list(itertools.product(range(2), repeat=2)))                          # every x_0: (4, 2)
    p0 = chain.log_prob(xs).exp()
    zs, paper_agrees = torch.tensor(list(itertools.product(range(proc.S), repeat=2))), []
    for z in zs:
        lik = torch.stack([proc.q_xt(xs, t)[:, pos, z[pos]] for pos in range(2)], 1).prod(1) * p0   # p(x_0, x_t = z)
        if lik.sum() == 0:
            continue
        pos_post = torch.stack([proc.posterior(z.expand(4, 2), xs, t)[:, pos] for pos in range(2)], 1)   # (4, 2, S)
        brute = (lik[:, None, None] * pos_post).sum(0) / lik.sum()
        exact = chain.denoiser(kind)(z[None], proc.alpha_bar[t].reshape(1))
        torch.testing.assert_close(proc.reverse_probs(exact, z[None], t)[0], brute)
        paper_agrees.append(torch.allclose(proc.reverse_probs(exact, z[None], t, paper_form=True)[0], brute))
    assert all(paper_agrees) == (kind == "absorbing")


def test_forward_backward_matches_enumeration():
    chain, proc = dm.MarkovChain(P4[:3, :3] / P4[:3, :3].sum(1, keepdim=True)), dc.d3pm("uniform", 3, 4)
    z = torch.tensor([[0, 2, 1, 1]])
    xs = torch.tensor(list(itertools.product(range(3), repeat=4)))
    w = chain.log_prob(xs).exp() * dc.emission("uniform", 3, z.expand(len(xs), 4), 0.4)[
        torch.arange(len(xs))[:, None], torch.arange(4), xs].prod(1)
    brute = torch.stack([torch.stack([w[xs[:, pos] == k].sum() for k in range(3)]) for pos in range(4)]) / w.sum()
    torch.testing.assert_close(chain.posterior(dc.emission("uniform", 3, z, 0.4))[0], brute)
    del proc


def test_d3pm_absorbing_term_is_mdlm_weighted_masked_cross_entropy():
    chain, proc, g = dm.MarkovChain(P4), dc.d3pm("absorbing", 4, 10), _gen()
    x0 = chain.sample(40, 6, g)
    for t in (1, 4, 10):
        xt = proc.sample_xt(x0, t, g)
        p = dc.carry_over(chain.denoiser()(xt, proc.alpha_bar[t].expand(40)), xt, 4)
        ce = (-p.gather(-1, x0[..., None]).squeeze(-1).log() * (xt == 4)).sum(-1)
        w = dc.mdlm_weight(float(proc.alpha_bar[t - 1]), float(proc.alpha_bar[t]))
        torch.testing.assert_close(dc.vb_terms(proc, p, x0, xt, t), w * ce)
    assert float(dc.prior_term(proc, x0).abs().max()) == 0.0


def test_many_step_limit_is_the_exact_log_likelihood():
    """With the exact denoiser the continuous masked NELBO is -log p(x) exactly (any order of unmasking is
    an exact chain rule), and the T-step D3PM absorbing NELBO decreases to it as T grows."""
    chain = dm.MarkovChain(P4)
    x = chain.sample(3, 6, _gen(1))
    D = chain.denoiser()
    torch.testing.assert_close(dc.masked_nelbo_exact(D, x, 4), -chain.log_prob(x))
    gaps = [float((dc.masked_nelbo_exact(D, x, 4, steps=T) + chain.log_prob(x)).mean()) for T in (1, 4, 16, 256)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and gaps[-1] < 0.02 < gaps[0]
    torch.testing.assert_close(dc.masked_nelbo_exact(D, x, 4, steps=1), torch.full((3,), 6 * math.log(4), dtype=torch.float64))


def test_mdlm_loss_is_unbiased_for_the_continuous_nelbo():
    chain = dm.MarkovChain(P4)
    x = chain.sample(1, 5, _gen(2)).expand(4000, 5)
    est = dc.mdlm_loss(chain.denoiser(), x, 4, _gen(3)).mean()
    exact = float(-chain.log_prob(x[:1]))
    assert abs(float(est) - exact) < 0.05 * exact


def test_samplers_with_the_exact_denoiser_reproduce_the_chain():
    chain, g = dm.MarkovChain(P4), _gen(4)
    x = dc.mdlm_sample(chain.denoiser(), 1500, 5, 4, 25, g)
    assert dm.bigram_tv(x, P4) < 0.04 < 0.4 < dm.bigram_tv(dc.mdlm_sample(chain.denoiser(), 1500, 5, 4, 1, g), P4)
    proc = dc.d3pm("uniform", 4, 25, "cosine")
    assert dm.bigram_tv(dc.d3pm_sample(proc, chain.denoiser("uniform"), 1500, 5, g), P4) < 0.04


def test_bigram_and_entropy_against_closed_forms():
    chain = dm.MarkovChain(P4)
    torch.testing.assert_close(chain.pi, torch.full((4,), 0.25, dtype=torch.float64))
    h_row = float(-(P4[0] * P4[0].log()).sum())
    assert chain.entropy(5) == pytest.approx(math.log(4) + 4 * h_row)
    x = torch.tensor([[0, 1, 2, 3, 0]])
    assert dm.bigram_tv(x, torch.roll(torch.eye(4, dtype=torch.float64), 1, 1)) == 0.0


def test_network_shapes_and_training_step():
    net = dm.CategoricalMLP(L=5, K=3, hidden=16, depth=1)
    data = torch.randint(0, 3, (20, 5), generator=_gen())
    model, losses = dm.train_categorical(net, data, steps=3, batch_size=8)
    p = dm.net_denoiser(model)(torch.full((2, 5), 3), torch.tensor([0.0, 0.5], dtype=torch.float64))
    assert p.shape == (2, 5, 3) and torch.allclose(p.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


def test_tokens_outside_the_vocabulary_are_refused():
    proc = dc.d3pm("absorbing", 4, 5)
    with pytest.raises(ValueError, match=r"token 5 at row 0, position 2.*0\.\.3"):
        proc.q_xt(torch.tensor([[0, 1, 5]]), 2)
    with pytest.raises(ValueError, match="token 4 at row 1"):
        proc.q_xt(torch.tensor([[0, 1], [4, 0]]), 2)             # the mask is not a data token
    with pytest.raises(ValueError, match="token -1"):
        dm.bigram_tv(torch.tensor([[0, -1]]), P4)
    with pytest.raises(TypeError, match="integer token ids"):
        dm.CategoricalMLP(L=2, K=2)(torch.zeros(1, 2), None)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        dm.CategoricalMLP(L=2, K=2)(torch.tensor([[0, 3]]), None)
    with pytest.raises(ValueError, match="t must be an integer in"):
        proc.Q(0)
    with pytest.raises(ValueError, match="unknown kind"):
        dc.d3pm("gaussian", 2, 3)


def test_masking_player_redraws_and_refuses_bad_frames():
    import matplotlib
    matplotlib.use("Agg")
    from diffedu.viz.widgets.domains import masking_player
    frames = dc.mdlm_sample(dm.MarkovChain(P4).denoiser(), 3, 4, 4, 4, _gen(5), trajectory=True)
    box = masking_player(frames, 4)
    box.slider.value = 4
    assert box.rgb.shape == (5, 3, 4, 3) and bool((frames[0] == 4).all()) and not bool((frames[-1] == 4).any())
    with pytest.raises(ValueError, match="outside 0..4"):
        masking_player([torch.full((2, 3), 7)], 4)
    with pytest.raises(ValueError, match="image_shape"):
        masking_player(frames, 4, image_shape=(3, 3))


def test_shipped_checkpoints_have_manifests_scripts_and_quality():
    from pathlib import Path

    import diffedu as dd
    from diffedu.domains import discrete_train as dt
    from diffedu.train.checkpoints import CHECKPOINTS, read_manifest
    script = (Path(__file__).parents[1] / "scripts" / "train_domains.sh").read_text()
    readme = (CHECKPOINTS / "domains" / "README.md").read_text()
    for name in [*(f"discrete_{k}" for k in dt.CONFIGS), "lowrank_mlp"]:
        m = read_manifest(CHECKPOINTS / "domains" / f"{name}.safetensors")
        assert {"model", "command", "data", "seed", "steps", "quality"} <= set(m) and f"`{name}`" in readme
        assert m["command"].removeprefix("python ") in script
    D = dm.net_denoiser(dd.pretrained("domains/discrete_markov_mdlm"))
    with torch.no_grad():
        x = dc.mdlm_sample(D, 500, dt.L_MARKOV, 4, 16, _gen(6))
    assert dm.bigram_tv(x, dt.markov_chain().P) < 0.15       # one-step (factorised) sampling: about 0.5
