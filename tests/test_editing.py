"""Chapter 15, editing with attention (correspondence/editing.py): prompt-to-prompt and
attend-and-excite on a tiny randomly initialised TextUNet, checked against the library's DDIM
sampler (peer), closed forms of the excite loss and hand-made cell labels."""
import math

import pytest
import torch

import diffedu as dd
from diffedu.correspondence import editing as E
from diffedu.data import scenes as S
from diffedu.nets.text import TextUNet
from diffedu.schedules import linear_schedule

SRC = ["a red circle above a blue square", "a green triangle"]
TGT = ["a red square above a blue square", "a green circle"]


@pytest.fixture(scope="module")
def den():
    torch.manual_seed(0)
    m = TextUNet(vocab=list(S.VOCAB), max_len=8, base_channels=8, text_dim=16, text_depth=0,
                 cross_attention_levels=(0, 1, 2), prediction="v").eval()
    for p in m.parameters():                       # nonzero output projections, so the captions matter
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return dd.to_denoiser(m, linear_schedule(1000))


def _ddim(den, captions, steps, seed):
    x_T = torch.randn(len(captions), 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    bound = dd.as_denoiser(lambda x, t: den(x, t, list(captions)), den.schedule)
    with torch.no_grad():
        return dd.samplers.ddim(bound, x_T, den.schedule, steps)


def test_tau0_is_plain_resampling_and_tau1_copies_every_map(den):
    xs, xe = E.prompt_to_prompt(den, SRC, TGT, 0.0, steps=4, seed=3)
    torch.testing.assert_close(xs, _ddim(den, SRC, 4, 3), atol=1e-5, rtol=0)     # peer: the library's DDIM
    torch.testing.assert_close(xe, _ddim(den, TGT, 4, 3), atol=1e-5, rtol=0)
    seen = []
    with E.attention_hook(den.model, lambda n, a: seen.append(a.clone())):      # sees the injected weights
        xs1, xe1 = E.prompt_to_prompt(den, SRC, TGT, 1.0, steps=4, seed=3)
    assert len(seen) == 4 * len(E.cross_attention_blocks(den.model))
    assert all(torch.equal(a[:2], a[2:]) for a in seen)
    torch.testing.assert_close(xs1, xs)                                          # the source is untouched
    assert (xe1 - xe).abs().max() > 1e-4                                         # and the edit is not
    seen.clear()
    with E.attention_hook(den.model, lambda n, a: seen.append(a.clone())):
        E.prompt_to_prompt(den, SRC, TGT, 0.5, steps=4, seed=3)
    n_blocks = len(E.cross_attention_blocks(den.model))
    same = [torch.equal(a[:2], a[2:]) for a in seen]
    assert same == [True] * (2 * n_blocks) + [False] * (2 * n_blocks)           # injected in the first half only


def test_guided_edit_without_injection_is_caption_guidance(den):
    from diffedu.nets.text import caption_guidance
    _, xe = E.prompt_to_prompt(den, SRC, TGT, 0.0, steps=3, seed=4, w=3.0)
    torch.testing.assert_close(xe, _ddim(caption_guidance(den, 3.0), TGT, 3, 4), atol=1e-5, rtol=0)


def test_excite_loss_closed_form():
    A = torch.zeros(1, 2, 256, 4)
    A[..., 0] = 1.0                                                              # every pixel on "a"...
    A[0, :, 37, 0], A[0, :, 37, 2] = 0.0, 1.0                                   # ...but pixel (2, 5) on "circle"
    loss = E.excite_loss({"x": A}, ["a red circle"], 16)
    centre = 1 / (1 + 2 * math.exp(-2)) ** 2                                     # 3x3 Gaussian, std 0.5: centre weight
    torch.testing.assert_close(loss, torch.tensor([1 - centre]))
    A2 = A.clone()
    A2[..., 0], A2[..., 2] = 0.0, 1.0                                            # "circle" everywhere: nothing neglected
    torch.testing.assert_close(E.excite_loss({"x": A2}, ["a red circle"], 16), torch.zeros(1))


def test_attend_and_excite_reduces_to_ddim_and_lowers_the_loss(den):
    torch.testing.assert_close(E.attend_and_excite(den, SRC, n_excite=0, steps=3, seed=1), _ddim(den, SRC, 3, 1),
                               atol=1e-5, rtol=0)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    t = torch.full((2,), 999)
    acts = {}
    with E.attention_hook(den.model, lambda n, a: acts.__setitem__(n, a) if a.shape[2] >= 64 else None):
        den.model(x, t, SRC)
    loss = E.excite_loss(acts, SRC, 16)
    grad, = torch.autograd.grad(loss.sum(), x)
    with torch.no_grad(), E.attention_hook(den.model, lambda n, a: acts.__setitem__(n, a) if a.shape[2] >= 64 else None):
        den.model(x - 1e-2 * grad / grad.flatten(1).norm(dim=1)[:, None, None, None], t, SRC)
        after = E.excite_loss(acts, SRC, 16)
    assert bool((after < loss.detach()).all())
    assert not torch.equal(E.attend_and_excite(den, SRC, n_excite=1, alpha=50.0, steps=3, seed=1), _ddim(den, SRC, 3, 1))


def test_scores_on_hand_made_cells():
    src, tgt = ["a red circle above a blue square"], ["a red square above a blue square"]
    rc, rs, bs = 1 + 0, 1 + 1, 1 + 3 * 2 + 1                                     # labels 1 + 3 colour + shape
    ok = E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[rs, 0, bs, 0]]), src, tgt)
    assert ok == {"changed": 1.0, "layout": 1.0, "kept": 1.0, "success": 1.0}
    moved = E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[0, rs, bs, 0]]), src, tgt)
    assert moved == {"changed": 0.0, "layout": 0.0, "kept": 1.0, "success": 0.0}
    lost = E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[rs, 0, 0, 0]]), src, tgt)
    assert lost["changed"] == 1.0 and lost["kept"] == 0.0 and lost["success"] == 0.0
    bc = 1 + 3 * 2                                                               # a blue circle
    col = E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[bc, 0, 1 + 3 * 2 + 2, 0]]),
                        src, ["a blue circle above a blue square"], attribute="colour")
    assert col == {"changed": 1.0, "layout": 1.0, "kept": 1.0, "success": 1.0}   # blue triangle: still blue
    x = torch.zeros(1, 3, 4, 4)
    y = x.clone()
    y[0, :, :2, :2] = 1.0                                                        # the edited cell (0) changes...
    y[0, 0, 3, 3] = 0.5                                                          # ...and one pixel outside it
    px = E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[rs, 0, bs, 0]]), src, tgt, x_src=x, x_edit=y)
    assert px["pixels kept"] == pytest.approx(11 / 12)
    with pytest.raises(ValueError, match="attribute"):
        E.edit_scores(torch.tensor([[rc, 0, bs, 0]]), torch.tensor([[rs, 0, bs, 0]]), src, tgt, attribute="size")
    cells = torch.tensor([[rc, 0, bs, 0], [rc, 0, 0, 0], [0, bs, 0, rc]])
    assert E.objects_present(cells, src * 3).tolist() == [True, False, True]
    two_red = ["a red circle above a red square"] * 2
    assert E.objects_present(torch.tensor([[rc, 0, 0, 0], [rc, 0, rs, 0]]), two_red, "colour").tolist() == [False, True]


def test_bad_inputs(den):
    with pytest.raises(ValueError, match="equal length"):
        E.prompt_to_prompt(den, ["a red circle"], ["a red circle above a red square"], 0.5, steps=2)
    with pytest.raises(ValueError, match="tau"):
        E.prompt_to_prompt(den, SRC, TGT, 1.5, steps=2)
    with pytest.raises(TypeError, match="TextUNet"):
        E.prompt_to_prompt(dd.as_denoiser(lambda x, t: x, den.schedule), SRC, TGT, 0.5)
    with pytest.raises(ValueError, match="appears 0 time"):
        E.swap_word("a red circle", "square", "triangle")
    assert E.swap_word("a red circle above a red circle", "circle", "square", 1) == "a red circle above a red square"
    with pytest.raises(ValueError, match="names no object"):
        E.excite_loss({"x": torch.ones(1, 1, 256, 4) / 4}, ["a red"], 16)
    with pytest.raises(ValueError, match="n_excite"):
        E.attend_and_excite(den, SRC, n_excite=-1)
    with pytest.raises(ValueError, match="cells"):
        E.objects_present(torch.zeros(2, 3, dtype=torch.long), SRC)


def test_tau_explorer_draws_and_refuses_mismatched_edits():
    x = torch.zeros(3, 3, 16, 16)
    box = E.tau_explorer(x, {0.0: x, 0.5: x + 0.5, 1.0: x}, SRC + SRC[:1], TGT + TGT[:1], n_show=2)
    assert box.controls["tau"].value == 0.5 and len(box.draw().axes) == 4
    with pytest.raises(ValueError, match="same shape"):
        E.tau_explorer(x, {0.0: x[:2]}, SRC, TGT)
