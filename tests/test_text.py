"""The caption model (nets/text.py): the tokenizer names unknown words, cross-attention against
a from-scratch softmax, the attention maps through `features`, caption dropout, and caption
guidance = the CFG formula."""
import pytest
import torch

import diffedu as dd
from diffedu.nets import text as T


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = T.TextUNet(vocab=["a", "red", "blue", "dot"], max_len=4, base_channels=8, text_dim=16, text_depth=1)
    with torch.no_grad():                       # random weights everywhere (the init zeroes outputs)
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return m.eval()


def test_tokenizer_round_trip_and_errors():
    tok = T.Tokenizer(["a", "red", "dot"], max_len=4)
    ids = tok.encode(["a red dot", "", "Red"])
    assert ids.tolist() == [[1, 2, 3, 0], [0, 0, 0, 0], [2, 0, 0, 0]]
    assert tok.decode(ids) == ["a red dot", "", "red"]
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        tok.encode("a purple dot")
    with pytest.raises(ValueError, match="at most max_len=4"):
        tok.encode("a red dot a red")
    with pytest.raises(ValueError, match="distinct"):
        T.Tokenizer(["a", "a"], 3)


def test_cross_attention_is_softmax_attention_written_out():
    torch.manual_seed(1)
    blk = T.CrossAttentionBlock(8, 6, num_heads=2)
    torch.nn.init.normal_(blk.proj.weight)
    x, c = torch.randn(2, 8, 3, 3), torch.randn(2, 5, 6)
    q = blk.q(blk.norm(x)).flatten(2).transpose(1, 2)                 # (B, 9, 8)
    k, v = blk.kv(c).split(8, dim=-1)                                 # (B, 5, 8) each
    outs = []
    for h in range(2):                                                # one head at a time
        sl = slice(4 * h, 4 * h + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        outs.append(w @ v[..., sl])
    ref = x + blk.proj(torch.cat(outs, -1).transpose(1, 2).reshape(2, 8, 3, 3))
    torch.testing.assert_close(blk(x, c), ref)


def test_features_give_attention_maps_that_sum_to_one(model):
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    f = model.features(x, t, ["a red dot", "a blue dot"])
    torch.testing.assert_close(f["out"], model(x, t, ["a red dot", "a blue dot"]))
    maps = {k: v for k, v in f.items() if k.startswith("attn.")}
    assert set(maps) == {"attn.down.2", "attn.down.4", "attn.mid", "attn.up.0", "attn.up.1", "attn.up.2", "attn.up.3"}
    assert maps["attn.down.2"].shape == (2, 4, 64, 4) and maps["attn.mid"].shape == (2, 4, 16, 4)
    for v in maps.values():
        torch.testing.assert_close(v.sum(-1), torch.ones(v.shape[:-1]))


def test_captions_matter_ids_equal_strings_and_dropout_only_in_training(model):
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([100, 100])
    with torch.no_grad():
        a = model(x, t, ["a red dot", "a red dot"])
        assert torch.equal(a, model(x, t, model.tokenizer.encode("a red dot", 2)))
        assert torch.equal(a, model(x, t, "a red dot"))
        assert (a - model(x, t, "a blue dot")).abs().max() > 1e-4
        assert torch.equal(model(x, t, None), model(x, t, ""))
    model.train()
    torch.manual_seed(0)
    ids = model.tokens("a red dot", 2000)
    model.eval()
    assert abs((ids == 0).all(1).float().mean().item() - model.caption_dropout_prob) < 0.03
    with pytest.raises(ValueError, match="unknown word 'green'"):
        model(x, t, "a green dot")


def test_caption_guidance_is_the_cfg_formula(model):
    den = dd.to_denoiser(model, dd.linear_schedule(1000))
    x, t, w = torch.randn(2, 3, 16, 16), torch.tensor([200, 800]), 3.0
    g = T.caption_guidance(den, w, "a red dot")
    with torch.no_grad():
        c, u = den(x, t, "a red dot"), den(x, t, "")
        torch.testing.assert_close(g(x, t), u + w * (c - u), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="TextUNet"):
        T.caption_guidance(dd.as_denoiser(lambda x, t: x, dd.linear_schedule(10)), 2.0)
