"""The exercises of chapter 06: references agree with the package, wrong answers fail."""
import torch

from diffedu import exercises as ex
from diffedu.exercises import architectures

NAMES = [e.name for e in architectures.EXERCISES]


def test_dit_size_matches_the_official_sizes():
    # Peebles & Xie, Table 1: DiT-XL/2 has 675M parameters and 256 tokens on 32x32x4 latents
    # (the official model also learns sigma: p^2 C (D + 1) more outputs of the final layer).
    T, P = architectures.dit_size(32, 4, 2, 1152, 28, 1000)
    assert T == 256 and abs(P + 2 * 2 * 4 * (1152 + 1) - 675e6) < 0.5e6
    # the patch size changes the tokens 16-fold from p = 2 to 8, the parameters by under 0.01%
    T8, P8 = architectures.dit_size(32, 4, 8, 1152, 28, 1000)
    assert T / T8 == 16 and abs(P8 / P - 1) < 1e-3


def test_common_mistakes_fail(capsys):
    def size_without_null_label(image_size, channels, patch_size, hidden_size, depth, num_classes):
        T, P = architectures.dit_size(image_size, channels, patch_size, hidden_size, depth, num_classes)
        return T, P - hidden_size

    def size_counting_positions(image_size, channels, patch_size, hidden_size, depth, num_classes):
        T, P = architectures.dit_size(image_size, channels, patch_size, hidden_size, depth, num_classes)
        return T, P + T * hidden_size

    def gradient_through_the_gate(x, f, g):          # as if the gate were 1, or forgotten in backprop
        out, gx, gg, _ = architectures.adaln_zero_at_init(x, f, g)
        return out, gx, gg, g

    def gate_gradient_not_summed(x, f, g):           # one gate per token instead of per sample
        out, gx, _, gf = architectures.adaln_zero_at_init(x, f, g)
        return out, gx, (g * f)[:, 0], gf

    assert not ex.check("dit_size", size_without_null_label)
    assert not ex.check("dit_size", size_counting_positions)
    assert not ex.check("adaln_zero_at_init", gradient_through_the_gate)
    assert not ex.check("adaln_zero_at_init", gate_gradient_not_summed)
    assert not ex.check("attention_baseline", lambda L, T: (torch.tensor(L / T), torch.tensor(T / L)))
