import pytest
import torch

import diffedu as dd
from diffedu import guidance as G
from diffedu.exact import guidance as EG


def labelled():
    """Two classes, class 0 bimodal (left/right), class 1 bimodal (up/down), plus a shared-ish third mode."""
    return dd.GaussianMixture([0.2, 0.2, 0.25, 0.25, 0.1],
                              [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, -2.0], [1.0, 1.0]],
                              [[0.3, 0.2], [0.2, 0.3], [0.3, 0.3], [0.4, 0.2], [0.5, 0.5]],
                              labels=[0, 0, 1, 1, 0])


def toy_denoiser():
    """A conditional 'network': D(x, t, c) = tanh(x) * (1 + c) * t / 1000 (null label 3), with eps."""
    sched = dd.linear_schedule(1000)
    model = lambda x, t, c: torch.tanh(x) * (1.0 + c[:, None].double()) * t[:, None] / 1000.0
    return dd.NetworkDenoiser(model, sched, prediction="x0"), sched


def test_cfg_matches_hand_computation_in_x0_and_eps():
    D, sched = toy_denoiser()
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.full((6,), 700)
    c = torch.tensor([0, 1, 2, 0, 1, 2])
    null = torch.full((6,), 3)
    for w in (0.0, 1.0, 2.5, -0.5):
        guided = G.classifier_free_guidance(D, w, null_label=3)
        x0, eps = guided.x0_eps(x, t, c)
        xc, ec = D.x0_eps(x, t, c)
        xu, eu = D.x0_eps(x, t, null)
        torch.testing.assert_close(x0, xu + w * (xc - xu))
        torch.testing.assert_close(eps, eu + w * (ec - eu))
        # the combination is affine, so x0 and eps stay consistent: x_t = a x0 + s eps
        ab = sched.alpha_bar[700].item()
        torch.testing.assert_close(ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps, x)
    # the Ho & Salimans convention: (1 + w) cond - w uncond
    hs = G.classifier_free_guidance(D, 1.5, null_label=3, convention="ho_salimans")
    torch.testing.assert_close(hs(x, t, c), 2.5 * D(x, t, c) - 1.5 * D(x, t, null))


def test_cfg_w1_is_conditional_and_w0_is_unconditional():
    g, sched = labelled(), dd.cosine_schedule(1000)
    Dc = EG.gmm_class_denoiser(g, sched)
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    t = torch.full((10,), 400)
    ab = sched.alpha_bar[400].item()
    torch.testing.assert_close(EG.exact_cfg_denoiser(g, sched, 1, 1.0)(x, t), g.condition(1).denoiser(x, ab))
    torch.testing.assert_close(EG.exact_cfg_denoiser(g, sched, 1, 0.0)(x, t), g.denoiser(x, ab))
    torch.testing.assert_close(EG.exact_cfg_denoiser(g, sched, 1, 0.0, "ho_salimans")(x, t), g.condition(1).denoiser(x, ab))
    torch.testing.assert_close(Dc(x, t), g.denoiser(x, ab))                  # no label: unconditional
    # per-row labels and times
    c = torch.tensor([0, 1] * 5)
    tt = torch.tensor([100] * 5 + [900] * 5)
    out = Dc(x, tt, c)
    torch.testing.assert_close(out[5:6], g.condition(1).denoiser(x[5:6], sched.alpha_bar[900].item()))


def test_exact_classifier_is_bayes():
    g, sched = labelled(), dd.linear_schedule(1000)
    clf = EG.gmm_classifier(g, sched)
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    t = torch.full((20,), 300)
    logp = clf(x, t)
    r = g.noisy(sched.alpha_bar[300].item()).responsibilities(x)
    torch.testing.assert_close(logp.exp(), torch.stack([r[:, [0, 1, 4]].sum(1), r[:, [2, 3]].sum(1)], 1))


@pytest.mark.parametrize("t", [50, 500, 950])
def test_exact_classifier_guidance_scale_1_is_the_conditional_denoiser(t):
    """Bayes: grad log p(y | x_t) + grad log p(x_t) = grad log p(x_t | y), so classifier guidance
    with scale 1 turns the exact unconditional denoiser into the exact conditional one."""
    g, sched = labelled(), dd.linear_schedule(1000)
    guided = G.classifier_guidance(EG.gmm_class_denoiser(g, sched), EG.gmm_classifier(g, sched), 1.0)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    tt = torch.full((32,), t)
    ab = sched.alpha_bar[t].item()
    for y in (0, 1):
        x0, eps = guided.x0_eps(x, tt, y)
        torch.testing.assert_close(x0, g.condition(y).denoiser(x, ab))
        torch.testing.assert_close(eps, -(1 - ab) ** 0.5 * g.condition(y).score_t(x, ab))


def test_classifier_guidance_matches_hand_computation():
    """A linear classifier logits = x W^T has grad log p(y|x) = W_y - sum_c p_c W_c."""
    D, sched = toy_denoiser()
    D = dd.NetworkDenoiser(D.model, sched, "x0", cond=torch.zeros(4, dtype=torch.long))
    W = torch.tensor([[1.0, -1.0], [0.5, 2.0], [0.0, 0.3]], dtype=torch.float64)
    clf = lambda x, t: x @ W.T
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    t = torch.full((4,), 600)
    y = torch.tensor([0, 1, 2, 1])
    guided = G.classifier_guidance(D, clf, 3.0, cond=y)
    p = torch.softmax(x @ W.T, 1)
    grad = W[y] - p @ W
    ab = sched.alpha_bar[600].item()
    eps = D.eps(x, t) - 3.0 * (1 - ab) ** 0.5 * grad
    torch.testing.assert_close(guided.eps(x, t), eps)
    torch.testing.assert_close(guided(x, t), (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5)


def test_guides_run_in_every_sampler_and_w1_samples_the_class():
    g, sched = labelled(), dd.linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    xT = torch.randn(1500, 2, generator=gen, dtype=torch.float64)
    x_cfg = dd.ddim(EG.exact_cfg_denoiser(g, sched, 0, 1.0), xT, sched, 50)
    x_cg = dd.ddpm(G.classifier_guidance(EG.gmm_class_denoiser(g, sched), EG.gmm_classifier(g, sched), 1.0, cond=0),
                   xT, sched, 50, generator=gen)
    truth, truth2 = g.condition(0).sample(1500, gen), g.condition(0).sample(1500, gen)
    floor = dd.sliced_wasserstein(truth, truth2)
    for x in (x_cfg, x_cg):
        assert dd.sliced_wasserstein(x, truth) < 2.5 * floor + 0.05


def test_tilted_density_grid_and_samples():
    g = labelled()
    xs, ys, q = EG.tilted_density_grid(g, 0, 1.0, lim=6.0, n=150)
    dA = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert q.shape == (150, 150) and (q.sum() * dA).item() == pytest.approx(1.0)
    # w = 1 is p(x | y): the grid values are its density (the mass outside [-6, 6]^2 is negligible)
    pts = torch.stack([xs[[10, 75, 120]], ys[[70, 80, 75]]], 1)
    ref = g.condition(0).log_prob(pts).exp()
    torch.testing.assert_close(q[[70, 80, 75], [10, 75, 120]], ref, rtol=1e-3, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    s = EG.sample_from_grid(xs, ys, q, 2000, gen)
    truth, truth2 = g.condition(0).sample(2000, gen), g.condition(0).sample(2000, gen)
    assert dd.sliced_wasserstein(s, truth) < 2.5 * dd.sliced_wasserstein(truth, truth2) + 0.03
    # w = 0 is the whole mixture; larger w suppresses the other class more
    _, _, q0 = EG.tilted_density_grid(g, 0, 0.0, lim=6.0, n=150)
    torch.testing.assert_close(q0.sum() * dA, torch.tensor(1.0, dtype=torch.float64))
    _, _, q3 = EG.tilted_density_grid(g, 0, 3.0, lim=6.0, n=150)
    up = (ys > 1.2)[:, None] & (xs.abs() < 0.6)[None, :]        # class 1's upper mode
    assert q3[up].sum() < q[up].sum() < q0[up].sum()


def test_compare_cfg_with_tilted_reports_the_mismatch():
    """CFG with the exact denoisers equals the tilted density at w = 0 and 1 only."""
    g = labelled()
    rows = EG.compare_cfg_with_tilted(g, 0, ws=(1.0, 4.0), n=1000, steps=40, grid=200)
    assert [r["w"] for r in rows] == [1.0, 4.0]
    assert rows[0]["sw"] < 3 * rows[0]["sw_floor"] + 0.05
    assert rows[1]["sw"] > rows[0]["sw"] and rows[1]["sw"] > 2 * rows[1]["sw_floor"]


def test_bad_inputs_raise_clear_errors():
    g, sched = labelled(), dd.linear_schedule(1000)
    Dc = EG.gmm_class_denoiser(g, sched)
    x, t = torch.randn(3, 2), torch.full((3,), 10)
    with pytest.raises(TypeError, match="w must be a real number"):
        G.classifier_free_guidance(Dc, "2", null_label=-1)
    with pytest.raises(TypeError, match="w must be a real number"):
        G.classifier_free_guidance(Dc, None, null_label=-1)
    with pytest.raises(ValueError, match="convention"):
        G.classifier_free_guidance(Dc, 2.0, null_label=-1, convention="1+w")
    with pytest.raises(ValueError, match="null_label"):
        G.classifier_free_guidance(lambda x, t, c: x, 2.0)
    with pytest.raises(ValueError, match="class label"):
        G.classifier_free_guidance(Dc, 2.0, null_label=-1)(x, t)
    with pytest.raises(TypeError, match="scale"):
        G.classifier_guidance(Dc, EG.gmm_classifier(g, sched), [1.0])
    with pytest.raises(TypeError, match="schedule"):
        G.classifier_guidance(lambda x, t: x, lambda x, t: x, 1.0)
    with pytest.raises(ValueError, match="labels"):
        EG.gmm_class_denoiser(dd.GaussianMixture([1.0], [[0.0, 0.0]]), sched)
    with pytest.raises(ValueError, match="lim"):
        EG.tilted_density_grid(g, 0, 2.0, lim=(1, 0, 0, 1))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        EG.tilted_density_grid(g, 0, 2.0, n=-5)
    with pytest.raises(TypeError, match="cond"):
        Dc(x, t, cond=torch.tensor([0.5, 1.0, 0.0]))
