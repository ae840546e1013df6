"""Exercises of chapter 12, part 1 (control), each graded on fixed random inputs.

    controlled_skip       a skip connection plus a zero convolution of the adapter's features (ControlNet eq. 2)
    zero_conv_weight_grad the gradient reaching a zero convolution's weight: nonzero although W = 0
    caption_cfg           classifier-free guidance with a null caption
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def controlled_skip(skip, features, weight, bias, strength):
    """skip + strength * Z(features): Z a 1x1 convolution with weight (C, C) and bias (C,),
    i.e. the same linear map at every pixel; skip, features: (B, C, H, W)."""
    z = torch.einsum("oc,bchw->bohw", weight, features) + bias[None, :, None, None]
    return skip + strength * z


def zero_conv_weight_grad(features, grad_out):
    """dL/dW of y = W * features + b (1x1 conv) given dL/dy = grad_out: (B, C, H, W) each.
    dL/dW[o, c] = sum over b, h, w of grad_out[b, o, h, w] * features[b, c, h, w] -- W itself
    does not appear, so a zero W still learns."""
    return torch.einsum("bohw,bchw->oc", grad_out, features)


def caption_cfg(x0_caption, x0_null, w):
    """D_w = D(x_t, "") + w (D(x_t, caption) - D(x_t, "")): w = 1 the conditional model."""
    return x0_null + w * (x0_caption - x0_null)


def _self_check():
    """The references agree with the package: controlled_skip with nets.control's zero conv (given
    weights) added as ControlledUNet adds it; zero_conv_weight_grad with autograd through that conv;
    caption_cfg with the mix written as in nets.text.CaptionGuidance (tested there in test_text.py)."""
    import torch.nn as nn

    from ..nets.control import zero_conv
    c = _skip_case(1)
    conv = zero_conv(4).double()
    with torch.no_grad():
        conv.weight.copy_(c["weight"][:, :, None, None])
        conv.bias.copy_(c["bias"])
        torch.testing.assert_close(controlled_skip(**c), c["skip"] + c["strength"] * conv(c["features"]))
    x, go = _rand(2, 3, 4, 4, seed=1), _rand(2, 3, 4, 4, seed=2)
    lin = zero_conv(3).double()
    (lin(x) * go).sum().backward()
    torch.testing.assert_close(zero_conv_weight_grad(x, go), lin.weight.grad[:, :, 0, 0])
    assert isinstance(lin, nn.Conv2d) and lin.weight.abs().sum() == 0
    a, b = _rand(2, 3, seed=3), _rand(2, 3, seed=4)
    torch.testing.assert_close(caption_cfg(a, b, 3.0), b + 3.0 * (a - b))


def _skip_case(k):
    C = 3 + k
    return {"skip": _rand(2, C, 4, 4, seed=k), "features": _rand(2, C, 4, 4, seed=10 + k),
            "weight": _rand(C, C, seed=20 + k) * (k > 0), "bias": _rand(C, seed=30 + k), "strength": [1.0, 0.5, 2.0][k]}


EXERCISES = [
    Exercise("controlled_skip", "12",
             "add strength * Z(features) to a skip, Z a 1x1 convolution with weight (C, C) and bias (C,)",
             controlled_skip, lambda: [_skip_case(k) for k in range(3)],
             "A 1x1 convolution mixes channels at each pixel: out[b, o, h, w] = sum_c W[o, c] x[b, c, h, w] + b[o] "
             "(torch.einsum('oc,bchw->bohw', ...)). Then skip + strength * that (Zhang et al. 2023, eq. 2)."),
    Exercise("zero_conv_weight_grad", "12",
             "the gradient dL/dW of a 1x1 convolution's weight, given its input and dL/d(output)",
             zero_conv_weight_grad,
             lambda: [{"features": _rand(2, c, 3, 3, seed=k), "grad_out": _rand(2, c, 3, 3, seed=5 + k)}
                      for k, c in enumerate((2, 4))],
             "y[b, o, h, w] = sum_c W[o, c] x[b, c, h, w] + b[o], so dy/dW[o, c] = x[b, c, h, w]: sum "
             "grad_out[b, o, h, w] * x[b, c, h, w] over b, h, w. No W in the answer: why a zero init still trains."),
    Exercise("caption_cfg", "12",
             "classifier-free guidance: mix the denoised guesses with and without the caption at weight w",
             caption_cfg,
             lambda: [{"x0_caption": _rand(2, 3, 4, 4, seed=k), "x0_null": _rand(2, 3, 4, 4, seed=7 + k), "w": w}
                      for k, w in enumerate((0.0, 1.0, 4.0))],
             "Start from the null guess and move w times the difference the caption makes (Ho & Salimans 2022, eq. 6)."),
]
