"""The captioned scenes of chapter 12 (data/scenes.py): captions agree with the rendered ground
truth, the grammar refuses unknown words by name, and the layout grader against brute force."""
import pytest
import torch

from diffedu.data import scenes as S


def test_captions_describe_their_scenes():
    d = S.scenes(60, size=16, seed=3)
    assert d.images.shape == (60, 3, 16, 16) and d.images.min() == -1 and d.images.max() == 1
    assert S.layout_accuracy(d.cells, d.captions) == {"all": 1.0, "colour": 1.0, "shape": 1.0, "position": 1.0}
    for i in range(60):
        objs, rel = S.parse_caption(d.captions[i])
        for k, (c, s) in enumerate(objs):
            m = d.masks[i, k]
            assert m.any()
            rgb = d.images[i][:, m].mean(1)                       # the object's pixels have its colour
            assert torch.equal(rgb, torch.tensor(S.COLOURS[list(S.COLOURS)[c]]))
            cy, cx = [v.float().mean() for v in torch.nonzero(m, as_tuple=True)]
            cell = int(cy >= 8) * 2 + int(cx >= 8)                # its centre lies in its cell
            assert d.positions[i, k] == cell and d.cells[i, cell] == 1 + 3 * c + s
        if rel is not None:                                       # the relation holds geometrically
            (ya, xa), (yb, xb) = [divmod(int(d.positions[i, k]), 2) for k in range(2)]
            assert {"above": ya < yb and xa == xb, "below": ya > yb and xa == xb,
                    "left of": xa < xb and ya == yb, "right of": xa > xb and ya == yb}[rel]


def test_render_object_areas_are_near_the_continuous_ones():
    r = 6.0
    areas = [S.render_object(k, 15.0, 15.0, r, 32).sum().item() for k in range(3)]
    assert areas[0] == pytest.approx(torch.pi * r ** 2, rel=0.05)
    assert areas[1] == pytest.approx((2 * 0.85 * r + 1) ** 2, rel=0.15)            # pixel-centre square
    assert areas[2] == pytest.approx(0.5 * 1.8 * r * 2 * r, rel=0.15)              # base 2r, height 1.8r


def test_valid_layouts_and_grading_by_hand():
    lay = S.valid_layouts("a red circle above a blue square")
    assert lay.tolist() == [[1, 0, 8, 0], [0, 1, 0, 8]]                 # red circle 1, blue square 8
    assert len(S.valid_layouts("a green triangle")) == 4
    pred = torch.tensor([[1, 0, 8, 0], [8, 0, 1, 0], [3, 0, 9, 0], [0, 0, 0, 1]])
    acc = S.layout_accuracy(pred, ["a red circle above a blue square"] * 3 + ["a red circle"])
    # row 0 right; row 1 swapped (colours and shapes in the wrong places, occupancy right);
    # row 2 right colours, wrong shapes; row 3 right
    assert acc == {"all": 0.5, "colour": 0.75, "shape": 0.5, "position": 1.0}


def test_unknown_words_and_bad_grammar_are_named():
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        S.parse_caption("a purple circle")
    with pytest.raises(ValueError, match="relation"):
        S.parse_caption("a red circle of a blue square")
    with pytest.raises(ValueError, match="size must be even"):
        S.scenes(2, size=15)
    with pytest.raises(ValueError, match="pred must be"):
        S.layout_accuracy(torch.zeros(2, 3, dtype=torch.long), ["a red circle"] * 2)


def test_cell_crops_order():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    crops = S.cell_crops(x)
    assert crops[:, 0].tolist() == [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[8, 9], [12, 13]], [[10, 11], [14, 15]]]
