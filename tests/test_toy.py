import pytest
import torch

from diffedu.data.toy import TOY, get_toy, toy_gmm
from diffedu.nets.mlp import MLPDenoiser


@pytest.mark.parametrize("name", sorted(TOY))
def test_toy_sets_are_seeded_and_sane(name):
    a, b, c = get_toy(name, 500, seed=1), get_toy(name, 500, seed=1), get_toy(name, 500, seed=2)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.abs().max() < 5 and 0.1 < a.std() < 3


def test_checkerboard_occupies_only_black_squares():
    x = get_toy("checkerboard", 5000)
    parity = (torch.floor(x[:, 0]) + torch.floor(x[:, 1])) % 2
    assert (parity == parity[0]).all()


def test_toy_gmm_labels_and_bad_name():
    g = toy_gmm()
    assert g.K == 4 and g.labels.tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="unknown toy data set 'moon'"):
        get_toy("moon")


def test_mlp_shapes_conditioning_and_errors():
    m = MLPDenoiser(dim=3, num_classes=4)
    x, t = torch.randn(5, 3), torch.randint(0, 1000, (5,))
    assert m(x, t).shape == (5, 3)
    assert m(x, t, torch.tensor([0, 1, 2, 3, 4])).shape == (5, 3)
    assert not torch.allclose(m(x, t, torch.zeros(5, dtype=torch.long)), m(x, t))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        m(torch.randn(5, 2), t)
    with pytest.raises(ValueError, match=r"cond holds labels in \[7, 7\], allowed \[0, 3\] or 4"):
        m(x, t, torch.full((5,), 7))
